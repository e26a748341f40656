"""The RIS Live client against a local WebSocket server replaying the recorded frames of
shared/data/mrt plus a withdraw / restore sequence the test builds; the connection is dropped
once and the client reconnects."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import pathlib

import pytest
from aiohttp import WSMsgType, web
from publiccore.collectors.bgp.follow_metrics import follow_metrics
from publiccore.collectors.bgp.live import (
    PEERS_METRIC,
    WITHDRAWN_METRIC,
    LiveClient,
    LiveOptions,
    LiveState,
    Watched,
)
from publiccore.collectors.bgp.watch import root_watch

from publiccore.config import BgpLiveSettings
from publiccore.roothints import load_hints
from publiccore.store import open_store


def _root_prefix(letter: str, family: str) -> str:
    """The watched prefix of a letter's bundled hints address (read as data: nothing is sent
    to it; the frames go to and come from the local replay server)."""
    return next(
        w.prefix for w in root_watch(load_hints()) if w.letter == letter and w.family == family
    )


A_ROOT = _root_prefix("a", "ipv4")
B_ROOT = _root_prefix("b", "ipv4")
A_ROOT_V6 = _root_prefix("a", "ipv6")
PEERS = [("rrc00", f"192.0.2.{i}", 64500 + i) for i in range(1, 5)]
T0 = 1_800_000_000.0


def _update(peer: tuple[str, str, int], when: float, *, announce: bool) -> str:
    host, address, asn = peer
    data: dict[str, object] = {
        "timestamp": when,
        "peer": address,
        "peer_asn": str(asn),
        "id": f"{address}-{when}",
        "host": f"{host}.ripe.net",
        "type": "UPDATE",
    }
    if announce:
        data["path"] = [asn, 19836]
        data["announcements"] = [{"next_hop": address, "prefixes": [A_ROOT]}]
        data["withdrawals"] = []
    else:
        data["withdrawals"] = [A_ROOT]
    return json.dumps({"type": "ris_message", "data": data})


def _peer_state(peer: tuple[str, str, int], when: float, state: str) -> str:
    host, address, asn = peer
    return json.dumps(
        {
            "type": "ris_message",
            "data": {
                "timestamp": when,
                "peer": address,
                "peer_asn": str(asn),
                "host": host,
                "type": "RIS_PEER_STATE",
                "state": state,
            },
        }
    )


def _recorded(shared_data: pathlib.Path) -> list[str]:
    mrt = shared_data / "mrt"
    lines = (mrt / "libbgpstream/ris-live-stream.json").read_text().splitlines()
    lines += (mrt / "bgpkit-parser/rislive/ris-live-frames.jsonl").read_text().splitlines()
    return [line for line in lines if line.strip()]


def test_live_client_follows_withdraw_restore_and_reconnects(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    recorded = _recorded(shared_data)
    bad = json.dumps(
        {
            "type": "ris_message",
            "data": {"type": "UPDATE", "timestamp": T0, "peer": "192.0.2.9", "peer_asn": "1",
                     "host": "rrc00", "announcements": "not a list"},
        }
    )  # fmt: skip
    first = [
        *recorded,
        *(_update(p, T0 + i, announce=True) for i, p in enumerate(PEERS)),
        bad,
        *(_update(p, T0 + 10 + i, announce=False) for i, p in enumerate(PEERS[:3])),
    ]
    second = [
        _update(PEERS[0], T0 + 20, announce=True),
        _update(PEERS[1], T0 + 21, announce=True),
        _peer_state(PEERS[3], T0 + 22, "down"),
    ]
    subscriptions: list[list[dict[str, object]]] = []
    sent_all = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        number = len(subscriptions)
        subscriptions.append([])
        expected = len(load_hints()) * 2
        for _ in range(200):
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == WSMsgType.TEXT
            subscriptions[number].append(json.loads(msg.data))
            if len(subscriptions[number]) >= expected:
                break
        for line in first if number == 0 else second:
            await ws.send_str(line)
        if number == 0:
            await ws.close()  # a dropped connection: the client must come back
            return ws
        sent_all.set()
        await asyncio.wait_for(ws.receive(), 30)  # until the client leaves
        return ws

    async def scenario() -> tuple[LiveClient, object]:
        app = web.Application()
        app.router.add_get("/v1/ws/", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        settings = BgpLiveSettings(backoff_seconds=0.05, snapshot_seconds=3600)
        options = LiveOptions.from_settings(
            settings, servers=load_hints(), url=f"http://127.0.0.1:{port}/v1/ws/?client=test"
        )
        store = open_store(str(tmp_path / "live.sqlite"))
        client = LiveClient(store, options, clock=lambda: T0 + 30)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await asyncio.wait_for(sent_all.wait(), 30)
        for _ in range(300):  # until the last frame is handled
            if client.stats.peer_down >= 2:
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
        await runner.cleanup()
        return client, store

    client, store = asyncio.run(scenario())
    try:
        assert len(subscriptions) == 2
        for batch in subscriptions:
            assert {
                "type": "ris_subscribe",
                "data": {
                    "prefix": A_ROOT,
                    "moreSpecific": True,
                    "lessSpecific": False,
                    "socketOptions": {"includeRaw": False},
                },
            } in batch
        stats = client.stats
        assert stats.connections == 2
        assert stats.malformed == 2  # the truncated recorded line and the built bad frame
        assert stats.errors == 1  # the recorded ris_error
        assert stats.peer_down == 2  # the recorded rrc01 down and PEERS[3]
        assert stats.events == 2
        events = [
            (o.time.timestamp(), o.value)
            for o in store.iter_observations(metric=WITHDRAWN_METRIC, subject=A_ROOT)  # type: ignore[attr-defined]
        ]
        assert events == [(T0 + 12, 1.0), (T0 + 20, 0.0)]
        labels = next(iter(store.iter_observations(metric=WITHDRAWN_METRIC))).labels  # type: ignore[attr-defined]
        assert labels == {"prefix_set": "root", "letter": "a", "family": "ipv4"}
        peers = [
            o.value
            for o in store.iter_observations(metric=PEERS_METRIC, subject=A_ROOT)  # type: ignore[attr-defined]
        ]
        assert peers[:2] == [1.0, 2.0]  # at the withdrawal (1 left), at the restoration
        assert client.state.peers(A_ROOT) == 2  # PEERS[3] cleared by its peer-state down
        metrics = follow_metrics(store, now=T0 + 40)  # type: ignore[arg-type]
        live = {p.prefix: p for p in metrics.live}
        assert live[A_ROOT].peers == 2.0
        assert live[A_ROOT].withdrawn is False
        assert live[B_ROOT].peers == 0.0  # b.root: subscribed, no route seen
    finally:
        store.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("frame", "malformed"),
    [
        ('{"type":"ris_message","data":{"type":"UPDATE","timestamp":1}}', True),
        ('{"type":"ris_message","data":{"type":"UPDATE","timestamp":1,"peer":"192.0.2.1",'
         '"peer_asn":"1","host":"rrc00","announcements":[{"prefixes":["nonsense"]}]}}', True),
        ('{"type":"ris_message","data":{"type":"KEEPALIVE","timestamp":1,"host":"rrc00"}}', False),
        ("[1, 2]", True),
        ('{"type":"pong"}', False),
    ],
)  # fmt: skip
def test_malformed_frames_are_counted_and_skipped(
    frame: str, malformed: bool, tmp_path: pathlib.Path
) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        options = LiveOptions(url="ws://127.0.0.1:1/", watched=(Watched(A_ROOT, "root", "a"),))
        client = LiveClient(store, options)
        assert client.handle(frame) == []
        assert client.stats.malformed == int(malformed)
    finally:
        store.close()


def test_more_specifics_count_and_peer_state_clears() -> None:
    more_specific = str(next(ipaddress.ip_network(A_ROOT_V6).subnets(new_prefix=49)))
    state = LiveState([Watched(A_ROOT_V6, "root", "a")], withdrawn_peers=1)
    base = {"timestamp": 1.0, "peer": "2001:db8::1", "peer_asn": "64500", "host": "rrc00"}
    events = state.apply(
        {**base, "type": "UPDATE", "announcements": [{"prefixes": [more_specific]}]}
    )
    assert events == [] and state.peers(A_ROOT_V6) == 1
    events = state.apply({**base, "type": "RIS_PEER_STATE", "state": "down"})
    assert [e[1] for e in events] == ["withdrawn"]
    assert state.peers(A_ROOT_V6) == 0
