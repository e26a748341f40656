"""``publiccore bgp live``: the RIS Live WebSocket stream for the root-server prefixes.

The client ``ris_subscribe``s to each root server's prefix from the hints (the /24 or /48 that
holds the address, more-specifics included) and to any configured prefix, and keeps per peer
(collector, peer address, peer AS) which prefixes it announces. For each watched prefix the
number of peers that carry a route into it is followed against its peak: when at least
``withdrawn_peers`` peers have withdrawn it, that is a withdrawal (an observation
``bgp_live_prefix_withdrawn`` = 1); when fewer than that are missing again, a restoration (= 0).
The peer count is stored with each event and every ``snapshot_seconds``
(``bgp_live_prefix_peers``). A RIS_PEER_STATE other than ``connected`` clears that peer's routes;
malformed frames are counted and skipped; a dropped connection is reopened with backoff.

The per-peer state survives a restart: it is saved in the store (the ``derived_snapshots`` row
``bgp-live-state``) at each snapshot when it changed and when the client stops, and a client
that starts within ``seed_max_age_seconds`` of that save, on the same stream (host and path of
the URL), starts from it (peers, peaks, withdrawn flags). A withdrawal right after a restart is
then counted against the peers known before it, and the peers' routes are not announced anew.
Without a usable saved state (none, too old, another stream, unreadable), the archive
follower's newest state of the RIS collectors it follows (``ROOT_PEERS_SNAPSHOT`` rows, at most
``follower_seed_max_age_seconds`` old) gives the peers; without either, peers are unknown until
they announce: the counts start at 0 and a withdrawal is only called against counts seen since
the start.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from publiccore.collectors.bgp.watch import ROOT_PEERS_SNAPSHOT, Watched, root_watch

from publiccore import __version__
from publiccore.config import BgpLiveSettings
from publiccore.errors import InputError
from publiccore.roothints import RootServer
from publiccore.store import Observation, Store

log = logging.getLogger(__name__)

SOURCE_KIND = "bgp-live"
STATE_SNAPSHOT = "bgp-live-state"  # derived_snapshots row holding the saved per-peer state
STATE_VERSION = 1
PEERS_METRIC = "bgp_live_prefix_peers"
WITHDRAWN_METRIC = "bgp_live_prefix_withdrawn"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclasses.dataclass(frozen=True, slots=True)
class LiveOptions:
    """What the client subscribes to and how it counts."""

    url: str
    watched: tuple[Watched, ...]
    withdrawn_peers: int = 3
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    heartbeat_seconds: float = 30.0
    snapshot_seconds: float = 60.0
    seed_max_age_seconds: float = 900.0  # a saved state older than this is not used (0: never)
    # RIS collectors whose archive-follower state (ROOT_PEERS_SNAPSHOT) may seed the start
    follower_collectors: tuple[str, ...] = ()
    follower_seed_max_age_seconds: float = 3600.0  # by the file time of that state (0: never)

    @classmethod
    def from_settings(
        cls,
        settings: BgpLiveSettings,
        *,
        servers: Sequence[RootServer],
        url: str | None = None,
        prefixes: Sequence[str] = (),
        follower_collectors: Sequence[str] = (),
    ) -> LiveOptions:
        """``[bgp.live]`` plus the root prefixes; raise InputError for a bad prefix."""
        watched = root_watch(servers)
        for text in (*settings.prefixes, *prefixes):
            try:
                net = ipaddress.ip_network(text, strict=True)
            except ValueError as exc:
                raise InputError(f"bad prefix {text!r}: {exc}") from None
            if all(w.prefix != str(net) for w in watched):
                watched.append(Watched(str(net), "configured"))
        return cls(
            url=url or settings.url,
            watched=tuple(watched),
            withdrawn_peers=settings.withdrawn_peers,
            backoff_seconds=settings.backoff_seconds,
            backoff_max_seconds=settings.backoff_max_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            snapshot_seconds=settings.snapshot_seconds,
            seed_max_age_seconds=settings.seed_max_age_seconds,
            follower_collectors=tuple(c for c in follower_collectors if c.startswith("rrc")),
            follower_seed_max_age_seconds=settings.follower_seed_max_age_seconds,
        )


@dataclasses.dataclass(slots=True)
class LiveStats:
    """Counters of one client run."""

    messages: int = 0
    updates: int = 0
    malformed: int = 0
    errors: int = 0  # ris_error frames
    connections: int = 0
    peer_down: int = 0
    events: int = 0
    # the start: seeded (own save) | follower (the archive follower's state) | none | stale |
    # other-url | unreadable (the own save not used, and no follower state)
    seed: str = "none"
    seeded_peers: int = 0  # (watched prefix, peer) pairs taken from it


Peer = tuple[str, str, int]  # collector, peer address, peer ASN


class MalformedFrame(ValueError):
    """A frame that is not a RIS Live message of the expected shape."""


class UnreadableState(ValueError):
    """A saved live state that is not of the shape ``LiveState.to_json`` writes."""


def _collector(host: object) -> str:
    if not isinstance(host, str) or not host:
        raise MalformedFrame("no host")
    return host.split(".", 1)[0]


class LiveState:
    """Per peer, the announced prefixes inside each watched prefix; withdrawal events."""

    def __init__(self, watched: Sequence[Watched], *, withdrawn_peers: int) -> None:
        self.watched = tuple(watched)
        self.withdrawn_peers = withdrawn_peers
        self._nets: list[tuple[Network, Watched]] = [
            (ipaddress.ip_network(w.prefix), w) for w in self.watched
        ]
        self.routes: dict[str, dict[Peer, set[str]]] = {w.prefix: {} for w in self.watched}
        self.peak: dict[str, int] = {w.prefix: 0 for w in self.watched}
        self.withdrawn: dict[str, bool] = {w.prefix: False for w in self.watched}
        self.changed = False  # since the last ``to_json``

    def to_json(self) -> dict[str, Any]:
        """The state as JSON-ready data (``seed`` reads it back); clears ``changed``."""
        self.changed = False
        return {
            "version": STATE_VERSION,
            "prefixes": {
                w.prefix: {
                    "peak": self.peak[w.prefix],
                    "withdrawn": self.withdrawn[w.prefix],
                    "peers": [
                        [collector, address, asn, sorted(routes)]
                        for (collector, address, asn), routes in sorted(
                            self.routes[w.prefix].items()
                        )
                    ],
                }
                for w in self.watched
            },
        }

    def seed(self, saved: Any) -> int:
        """Take a saved state (``to_json``'s data) for the prefixes watched now; return how many
        (prefix, peer) pairs it gave. Saved prefixes no longer watched are ignored, watched ones
        not saved start empty, and a saved route outside its watched prefix is dropped.

        Raises UnreadableState (nothing taken) for data of another shape.
        """
        try:
            if saved.get("version") != STATE_VERSION:
                raise UnreadableState(f"state version {saved.get('version')!r}")
            taken: dict[str, tuple[int, bool, dict[Peer, set[str]]]] = {}
            for prefix, item in saved["prefixes"].items():
                if prefix not in self.routes:
                    continue
                per_peer: dict[Peer, set[str]] = {}
                for collector, address, asn, routes in item["peers"]:
                    inside = {
                        str(r)
                        for r in routes
                        if any(w.prefix == prefix for w in self._inside(str(r)))
                    }
                    if inside:
                        per_peer[(str(collector), str(address), int(asn))] = inside
                taken[prefix] = (int(item["peak"]), bool(item["withdrawn"]), per_peer)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise UnreadableState(f"unreadable saved state: {exc}") from None
        for prefix, (peak, withdrawn, per_peer) in taken.items():
            self.routes[prefix] = per_peer
            self.peak[prefix] = max(peak, len(per_peer))
            self.withdrawn[prefix] = withdrawn
        return sum(len(per_peer) for _peak, _withdrawn, per_peer in taken.values())

    def peers(self, prefix: str) -> int:
        """Peers with a route inside a watched prefix."""
        return len(self.routes[prefix])

    def _inside(self, text: str) -> list[Watched]:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise MalformedFrame(f"bad prefix {text!r}") from None
        return [
            w
            for n, w in self._nets
            if n.version == net.version and net.subnet_of(n)  # type: ignore[arg-type]
        ]

    def apply(self, data: dict[str, Any]) -> list[tuple[Watched, str, float]]:
        """Apply one ``ris_message``'s data; return events (watched, withdrawn|restored, time).

        Raises MalformedFrame for data without the fields its type needs.
        """
        kind = data.get("type")
        when = data.get("timestamp")
        if not isinstance(when, int | float):
            raise MalformedFrame("no timestamp")
        touched: set[str] = set()
        if kind == "UPDATE":
            peer = self._peer(data)
            announcements = data.get("announcements", [])
            withdrawals = data.get("withdrawals", [])
            if not isinstance(announcements, list) or not isinstance(withdrawals, list):
                raise MalformedFrame("announcements and withdrawals must be lists")
            for item in announcements:
                prefixes = item.get("prefixes") if isinstance(item, dict) else None
                if not isinstance(prefixes, list):
                    raise MalformedFrame("an announcement without prefixes")
                for text in prefixes:
                    for w in self._inside(str(text)):
                        self.routes[w.prefix].setdefault(peer, set()).add(str(text))
                        touched.add(w.prefix)
            for text in withdrawals:
                for w in self._inside(str(text)):
                    held = self.routes[w.prefix].get(peer)
                    if held is not None:
                        held.discard(str(text))
                        if not held:
                            del self.routes[w.prefix][peer]
                    touched.add(w.prefix)
        elif kind in ("RIS_PEER_STATE", "STATE"):
            peer = self._peer(data)
            state = data.get("state")
            if not isinstance(state, str):
                raise MalformedFrame("a peer state without state")
            if state != "connected":
                for prefix, per_peer in self.routes.items():
                    if per_peer.pop(peer, None) is not None:
                        touched.add(prefix)
        if touched:
            self.changed = True
        return self._events(touched, float(when))

    @staticmethod
    def _peer(data: dict[str, Any]) -> Peer:
        address = data.get("peer")
        asn = data.get("peer_asn")
        if not isinstance(address, str) or not str(asn).isdigit():
            raise MalformedFrame("no peer or peer_asn")
        return (_collector(data.get("host")), address, int(str(asn)))

    def _events(self, touched: set[str], when: float) -> list[tuple[Watched, str, float]]:
        out = []
        for w in self.watched:
            if w.prefix not in touched:
                continue
            count = self.peers(w.prefix)
            self.peak[w.prefix] = max(self.peak[w.prefix], count)
            lost = self.peak[w.prefix] - count
            if not self.withdrawn[w.prefix] and lost >= self.withdrawn_peers:
                self.withdrawn[w.prefix] = True
                out.append((w, "withdrawn", when))
            elif self.withdrawn[w.prefix] and lost < self.withdrawn_peers:
                self.withdrawn[w.prefix] = False
                out.append((w, "restored", when))
        return out


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


class LiveClient:
    """The RIS Live client (see module doc); ``run`` until ``stop`` is set."""

    def __init__(
        self, store: Store, options: LiveOptions, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.options = options
        self.clock = clock
        self.state = LiveState(options.watched, withdrawn_peers=options.withdrawn_peers)
        self.stats = LiveStats()
        self.source_id: int | None = None
        self._saved_at = float("-inf")

    def subscriptions(self) -> list[dict[str, Any]]:
        """The ``ris_subscribe`` messages sent on each connection."""
        return [
            {
                "type": "ris_subscribe",
                "data": {
                    "prefix": w.prefix,
                    "moreSpecific": True,
                    "lessSpecific": False,
                    "socketOptions": {"includeRaw": False},
                },
            }
            for w in self.options.watched
        ]

    async def _store(self, observations: list[Observation]) -> None:
        if not observations:
            return
        if self.source_id is None:
            meta = {
                "software": {"name": "publiccore", "version": __version__},
                "command": "bgp live",
                "url": self.options.url.split("?", 1)[0],
                "prefixes": [w.prefix for w in self.options.watched],
                "withdrawn_peers": self.options.withdrawn_peers,
            }
            self.source_id = await asyncio.to_thread(self.store.add_source, SOURCE_KIND, meta)
        await asyncio.to_thread(self.store.put_observations, self.source_id, observations)

    def _peers_observation(self, w: Watched, when: float) -> Observation:
        return Observation(
            _at(when),
            "prefix",
            w.prefix,
            PEERS_METRIC,
            float(self.state.peers(w.prefix)),
            w.labels(),
        )

    def handle(self, text: str) -> list[Observation]:
        """One text frame → the observations it causes (counts malformed ones)."""
        self.stats.messages += 1
        try:
            frame = json.loads(text)
            if not isinstance(frame, dict):
                raise MalformedFrame("not an object")
            kind = frame.get("type")
            if kind == "ris_error":
                self.stats.errors += 1
                log.warning("RIS Live error: %s", frame.get("data"))
                return []
            if kind != "ris_message":
                return []
            data = frame.get("data")
            if not isinstance(data, dict):
                raise MalformedFrame("no data")
            if data.get("type") == "UPDATE":
                self.stats.updates += 1
            if data.get("type") in ("RIS_PEER_STATE", "STATE") and data.get("state") != "connected":
                self.stats.peer_down += 1
            events = self.state.apply(data)
        except (json.JSONDecodeError, MalformedFrame, AttributeError, TypeError) as exc:
            self.stats.malformed += 1
            log.debug("malformed RIS Live frame skipped: %s", exc)
            return []
        out = []
        for w, what, when in events:
            self.stats.events += 1
            log.info(
                "%s %s (%s): %d peers",
                w.prefix,
                what,
                w.letter or w.prefix_set,
                self.state.peers(w.prefix),
            )
            out.append(
                Observation(
                    _at(when),
                    "prefix",
                    w.prefix,
                    WITHDRAWN_METRIC,
                    1.0 if what == "withdrawn" else 0.0,
                    w.labels(),
                )
            )
            out.append(self._peers_observation(w, when))
        return out

    async def snapshot(self, *, final: bool = False) -> None:
        """Store every watched prefix's peer count now, and save the per-peer state (when due,
        or always when ``final``)."""
        now = self.clock()
        await self._store([self._peers_observation(w, now) for w in self.options.watched])
        await self.save_state(always=final)

    def _stream(self) -> str:
        """The stream a saved state belongs to: the URL's host and path (not its port, query)."""
        url = urllib.parse.urlsplit(self.options.url)
        return f"{url.hostname or ''}{url.path}"

    async def save_state(self, *, always: bool = False) -> None:
        """Save the per-peer state in the store: when it changed since the last save, when that
        save is half ``seed_max_age_seconds`` old (a quiet stream keeps it usable), or always."""
        now = self.clock()
        due = now - self._saved_at >= self.options.seed_max_age_seconds / 2
        if not (always or self.state.changed or due):
            return
        body = {"url": self._stream(), **self.state.to_json()}
        await asyncio.to_thread(
            self.store.put_snapshot,
            STATE_SNAPSHOT,
            computed_at=now,
            body=json.dumps(body, separators=(",", ":")),
        )
        self._saved_at = now

    def _follower_seed(self) -> int | None:
        """Seed from the archive follower's root peers of the RIS collectors it follows (those
        recent enough); the number of (prefix, peer) pairs taken, None when there is none."""
        limit = self.options.follower_seed_max_age_seconds
        if limit <= 0:
            return None
        merged: dict[str, list[Any]] = {}
        used = 0
        for collector in self.options.follower_collectors:
            saved = self.store.get_snapshot(f"{ROOT_PEERS_SNAPSHOT}/ris/{collector}")
            if saved is None or self.clock() - saved[0] > limit:
                continue
            try:
                prefixes = json.loads(saved[1])["prefixes"]
                peers = {str(p): list(item["peers"]) for p, item in prefixes.items()}
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
                log.warning("%s: the follower's root peers not used: %s", collector, exc)
                continue
            for prefix, rows in peers.items():
                merged.setdefault(prefix, []).extend(rows)
            used += 1
        if not used:
            return None
        body = {
            "version": STATE_VERSION,
            "prefixes": {
                p: {"peak": 0, "withdrawn": False, "peers": rows} for p, rows in merged.items()
            },
        }
        try:
            return self.state.seed(body)
        except UnreadableState as exc:
            log.warning("the follower's root peers not used: %s", exc)
            return None

    async def load_state(self) -> str:
        """Start from the saved per-peer state when it is usable (see module doc); return what
        was found (``LiveStats.seed``). A seeded start stores the peer counts at once."""
        saved = await asyncio.to_thread(self.store.get_snapshot, STATE_SNAPSHOT)
        max_age = self.options.seed_max_age_seconds
        if saved is None:
            outcome = "none"
        elif max_age <= 0 or self.clock() - saved[0] > max_age:
            outcome = "stale"
        else:
            try:
                body = json.loads(saved[1])
                if not isinstance(body, dict):
                    raise UnreadableState("not an object")
                if body.get("url") != self._stream():
                    outcome = "other-url"
                else:
                    self.stats.seeded_peers = self.state.seed(body)
                    outcome = "seeded"
            except (json.JSONDecodeError, UnreadableState) as exc:
                log.warning("RIS Live saved state not used: %s", exc)
                outcome = "unreadable"
        if outcome != "seeded":
            taken = await asyncio.to_thread(self._follower_seed)
            if taken is not None:
                outcome = "follower"
                self.stats.seeded_peers = taken
        self.stats.seed = outcome
        if outcome == "follower":
            log.info(
                "RIS Live state seeded from the archive follower's newest files: %d peer routes",
                self.stats.seeded_peers,
            )
            now = self.clock()
            await self._store([self._peers_observation(w, now) for w in self.options.watched])
        elif outcome == "seeded":
            log.info(
                "RIS Live state seeded from the save of %s: %d peer routes",
                _at(saved[0]).isoformat() if saved else "?",
                self.stats.seeded_peers,
            )
            now = self.clock()
            await self._store([self._peers_observation(w, now) for w in self.options.watched])
        else:
            log.info("RIS Live saved state %s: peers unknown until they announce", outcome)
        return outcome

    async def run(self, stop: asyncio.Event) -> LiveStats:
        """Connect, subscribe, follow; reconnect with backoff until ``stop`` is set."""
        backoff = self.options.backoff_seconds
        await self.load_state()
        snapshots = asyncio.create_task(self._snapshots(stop))
        try:
            async with aiohttp.ClientSession() as session:
                while not stop.is_set():
                    try:
                        await self._session(session, stop)
                        backoff = self.options.backoff_seconds
                    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                        log.warning("RIS Live connection failed: %s", exc)
                    if stop.is_set():
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), backoff)
                    backoff = min(max(backoff * 2, 0.1), self.options.backoff_max_seconds)
        finally:
            snapshots.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await snapshots
        await self.snapshot(final=True)  # the state as of the stop: a restart takes it up
        return self.stats

    async def _session(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        async with session.ws_connect(
            self.options.url, heartbeat=self.options.heartbeat_seconds
        ) as ws:
            self.stats.connections += 1
            for message in self.subscriptions():
                await ws.send_json(message)
            stopping = asyncio.create_task(stop.wait())
            try:
                while not stop.is_set():
                    receive = asyncio.create_task(ws.receive())
                    await asyncio.wait({receive, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    if not receive.done():
                        receive.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await receive
                        return
                    msg = receive.result()
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await self._store(self.handle(msg.data))
                    elif msg.type in (
                        aiohttp.WSMsgType.CLOSE,
                        aiohttp.WSMsgType.CLOSED,
                        aiohttp.WSMsgType.CLOSING,
                        aiohttp.WSMsgType.ERROR,
                    ):
                        log.warning("RIS Live connection closed, reconnecting")
                        return
                    else:
                        self.stats.malformed += 1  # binary frames are not RIS Live messages
            finally:
                stopping.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stopping

    async def _snapshots(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.snapshot_seconds)
            if not stop.is_set():
                await self.snapshot()


async def run_live(
    store: Store, options: LiveOptions, *, duration: float | None = None
) -> LiveStats:
    """Run the client until SIGTERM / SIGINT (or ``duration`` seconds); return its counters."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    return await LiveClient(store, options).run(stop)
