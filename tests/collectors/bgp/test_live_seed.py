"""RIS Live state across a restart: a client saves its per-peer state in the store and the next
one, started soon enough on the same stream, takes it up; against a local WebSocket server that
replays the recorded RIS Live frames of shared/data/mrt and frames the test builds."""

from __future__ import annotations

import asyncio
import json
import pathlib
from collections.abc import Sequence

from aiohttp import WSMsgType, web
from publiccore.collectors.bgp.live import (
    PEERS_METRIC,
    ROOT_PEERS_SNAPSHOT,
    STATE_SNAPSHOT,
    WITHDRAWN_METRIC,
    LiveClient,
    LiveOptions,
    LiveState,
    UnreadableState,
    Watched,
)

from publiccore.config import BgpLiveSettings
from publiccore.roothints import load_hints
from publiccore.store import Store, open_store
from tests.collectors.bgp.test_live import A_ROOT, PEERS, T0, _peer_state, _recorded, _update


async def _run_client(
    store: Store,
    frames: Sequence[str],
    *,
    now: float,
    max_age: float = 900.0,
    path: str = "/v1/ws/",
    follower: Sequence[str] = (),
) -> LiveClient:
    """One client run: connect, take every frame the local server sends, stop."""
    sent = asyncio.Event()

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        for _ in range(len(load_hints()) * 2):  # the subscriptions
            msg = await asyncio.wait_for(ws.receive(), 10)
            assert msg.type == WSMsgType.TEXT
        for line in frames:
            await ws.send_str(line)
        sent.set()
        await asyncio.wait_for(ws.receive(), 30)  # until the client leaves
        return ws

    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        settings = BgpLiveSettings(
            backoff_seconds=0.05, snapshot_seconds=3600, seed_max_age_seconds=max_age
        )
        options = LiveOptions.from_settings(
            settings,
            servers=load_hints(),
            url=f"http://127.0.0.1:{port}{path}?client=test",
            follower_collectors=follower,
        )
        client = LiveClient(store, options, clock=lambda: now)
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        await asyncio.wait_for(sent.wait(), 30)
        for _ in range(300):  # until the last frame is handled
            if client.stats.messages >= len(frames):
                break
            await asyncio.sleep(0.02)
        stop.set()
        await asyncio.wait_for(task, 30)
    finally:
        await runner.cleanup()
    return client


def _series(store: Store, metric: str) -> list[tuple[float, float]]:
    return [
        (o.time.timestamp(), o.value)
        for o in store.iter_observations(metric=metric, subject=A_ROOT)  # type: ignore[attr-defined]
    ]


def test_a_restart_takes_up_the_saved_state(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store = open_store(str(tmp_path / "live.sqlite"))
    try:
        # first run: the recorded frames, then four peers announce a.root's prefix
        first = [*_recorded(shared_data), *(_update(p, T0 + i, announce=True) for i, p in
                                            enumerate(PEERS))]  # fmt: skip
        one = asyncio.run(_run_client(store, first, now=T0 + 10))
        assert one.stats.seed == "none"
        assert one.state.peers(A_ROOT) == 4
        saved = store.get_snapshot(STATE_SNAPSHOT)  # type: ignore[attr-defined]
        assert saved is not None and saved[0] == T0 + 10

        # restart 60 s later: three peers withdraw at once; nobody announces again
        withdrawals = [_update(p, T0 + 70 + i, announce=False) for i, p in enumerate(PEERS[:3])]
        two = asyncio.run(_run_client(store, withdrawals, now=T0 + 70))
        assert two.stats.seed == "seeded"
        assert two.stats.seeded_peers == 4
        # the withdrawal right after the restart is seen (3 of the 4 peers known before it)
        assert _series(store, WITHDRAWN_METRIC) == [(T0 + 72, 1.0)]
        peers = sorted(_series(store, PEERS_METRIC))
        # the first run's final snapshot (4), the seeded start (4, not 0: no mass announcement
        # after the restart), the stop (1: the test's clock stands still) and the withdrawal (1)
        assert peers == [(T0 + 10, 4.0), (T0 + 70, 1.0), (T0 + 70, 4.0), (T0 + 72, 1.0)]

        # a third run, restored by two peers: the saved withdrawn flag and peak carry on
        restore = [_update(p, T0 + 80 + i, announce=True) for i, p in enumerate(PEERS[:2])]
        three = asyncio.run(_run_client(store, restore, now=T0 + 80))
        assert three.stats.seed == "seeded"
        # one peer back: 2 of the peak of 4 are missing, fewer than 3: restored
        assert _series(store, WITHDRAWN_METRIC) == [(T0 + 72, 1.0), (T0 + 80, 0.0)]
        assert three.state.peers(A_ROOT) == 3
    finally:
        store.close()  # type: ignore[attr-defined]


def test_a_state_too_old_or_of_another_stream_is_not_used(tmp_path: pathlib.Path) -> None:
    store = open_store(str(tmp_path / "live.sqlite"))
    try:
        announce = [_update(p, T0 + i, announce=True) for i, p in enumerate(PEERS)]
        asyncio.run(_run_client(store, announce, now=T0 + 10, max_age=600))
        withdrawals = [_update(p, T0 + 700 + i, announce=False) for i, p in enumerate(PEERS[:3])]
        # 690 s later with a 600 s limit: peers unknown until they announce, no withdrawal
        late = asyncio.run(_run_client(store, withdrawals, now=T0 + 700, max_age=600))
        assert late.stats.seed == "stale"
        assert late.state.peers(A_ROOT) == 0
        assert _series(store, WITHDRAWN_METRIC) == []
        # that run saved its own (empty) state; a state saved for another stream URL is ignored
        asyncio.run(_run_client(store, announce, now=T0 + 710, path="/other/"))
        other = asyncio.run(_run_client(store, withdrawals, now=T0 + 720))
        assert other.stats.seed == "other-url"
        assert _series(store, WITHDRAWN_METRIC) == []
        # max age 0: never seeded
        never = asyncio.run(_run_client(store, [], now=T0 + 730, max_age=0))
        assert never.stats.seed == "stale"
    finally:
        store.close()  # type: ignore[attr-defined]


def test_state_round_trip_and_unreadable_saves() -> None:
    watched = [Watched(A_ROOT, "root", "a"), Watched("192.0.2.0/24", "configured")]
    state = LiveState(watched, withdrawn_peers=2)
    for i, peer in enumerate(PEERS):
        frame = json.loads(_update(peer, T0 + i, announce=True))
        state.apply(frame["data"])
    state.apply(json.loads(_peer_state(PEERS[3], T0 + 5, "down"))["data"])
    assert state.changed
    saved = json.loads(json.dumps(state.to_json()))
    assert not state.changed
    # the saved prefix list names a prefix no longer watched, and a route outside its prefix
    saved["prefixes"]["203.0.113.0/24"] = {"peak": 9, "withdrawn": True, "peers": []}
    saved["prefixes"][A_ROOT]["peers"][0][3].append("198.51.100.0/24")
    again = LiveState([watched[0]], withdrawn_peers=2)
    assert again.seed(saved) == 3
    assert again.routes == {A_ROOT: state.routes[A_ROOT]}
    assert again.peak == {A_ROOT: 4}  # the peak before PEERS[3] went down
    for bad in ({"version": 2, "prefixes": {}}, {"version": 1}, [1], {"version": 1, "prefixes":
                {A_ROOT: {"peak": "x", "withdrawn": False, "peers": []}}}):  # fmt: skip
        fresh = LiveState([watched[0]], withdrawn_peers=2)
        try:
            fresh.seed(bad)
        except UnreadableState:
            pass
        else:
            raise AssertionError(f"{bad!r} was taken")
        assert fresh.routes == {A_ROOT: {}}


def test_without_its_own_save_it_starts_from_the_followers_state(tmp_path: pathlib.Path) -> None:
    store = open_store(str(tmp_path / "live.sqlite"))
    try:
        # what the archive follower saved for rrc00 after its newest file (at T0): 4 peers carry
        # a.root's prefix; route-views2 (not on RIS Live) and an unreadable row are ignored
        body = {"version": 1, "file": "updates.x.gz", "prefixes": {A_ROOT: {"peers": [
            [c, a, asn, [A_ROOT]] for c, a, asn in PEERS]}}}  # fmt: skip
        store.put_snapshot(
            f"{ROOT_PEERS_SNAPSHOT}/ris/rrc00", computed_at=T0, body=json.dumps(body)
        )
        store.put_snapshot(f"{ROOT_PEERS_SNAPSHOT}/ris/rrc01", computed_at=T0, body="[not json")
        withdrawals = [_update(p, T0 + 100 + i, announce=False) for i, p in enumerate(PEERS[:3])]
        # an hour and more later: too old to be used, peers unknown, no withdrawal
        late = asyncio.run(
            _run_client(store, withdrawals, now=T0 + 3700, follower=["rrc00", "route-views2"])
        )
        assert (late.stats.seed, late.stats.seeded_peers) == ("none", 0)
        assert _series(store, WITHDRAWN_METRIC) == []
        # a newer state of the follower, the client's own save of another stream: taken
        store.put_snapshot(
            f"{ROOT_PEERS_SNAPSHOT}/ris/rrc00", computed_at=T0 + 3600, body=json.dumps(body)
        )
        withdrawals = [_update(p, T0 + 3800 + i, announce=False) for i, p in enumerate(PEERS[:3])]
        seeded = asyncio.run(
            _run_client(
                store, withdrawals, now=T0 + 3800, follower=["rrc00", "rrc01"], path="/other/"
            )
        )
        assert (seeded.stats.seed, seeded.stats.seeded_peers) == ("follower", 4)
        assert _series(store, WITHDRAWN_METRIC) == [(T0 + 3802, 1.0)]
        assert seeded.state.peers(A_ROOT) == 1
    finally:
        store.close()  # type: ignore[attr-defined]
