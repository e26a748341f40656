"""The archive follower saves, after each file, which peers carry each watched root prefix in
the collector's state (for ``bgp live`` to start from); checked on the real 2002 rrc05 RIB
against an independent reading of its ``bgpdump -m`` lines."""

from __future__ import annotations

import asyncio
import json
import pathlib
import shutil
import subprocess

import pytest
from publiccore.collectors.bgp import archive as arc
from publiccore.collectors.bgp import follow as fl
from publiccore.collectors.bgp import process as proc
from publiccore.collectors.bgp.watch import ROOT_PEERS_SNAPSHOT, root_watch

from publiccore.clock import parse_when
from publiccore.roothints import load_hints
from publiccore.store import open_store
from tests.collectors.bgp.archive_server import ArchiveServer

pytestmark = pytest.mark.skipif(shutil.which("bgpdump") is None, reason="bgpdump not installed")

RIB = "rrc05/2002.07/bview.20020722.2337.gz"
UPDATES = "rrc05/2010.07/updates.20100722.2015.gz"


def _follow(store: object, url: str, tmp: pathlib.Path) -> fl.PollCounts:
    options = fl.FollowOptions(
        bases={"ris": url, "routeviews": url},
        collectors=("rrc05",),
        cache_dir=tmp / "cache",
        since=parse_when("2002-07-22").timestamp(),
        once=True,
        workers=1,
    )
    now = parse_when("2010-07-22T21:00Z").timestamp()
    follower = fl.Follower(store, options, proc.ProcessConfig(), clock=lambda: now)  # type: ignore[arg-type]
    return asyncio.run(follower.run())


def test_follower_saves_the_root_prefixes_peers(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    rib = shared_data / "mrt/bgpdump/bview.20020722.2337.gz"
    watched = {w.prefix for w in root_watch(load_hints())}
    expected: dict[str, set[tuple[str, str, int]]] = {p: set() for p in watched}
    lines = subprocess.run(
        ["bgpdump", "-m", str(rib)], capture_output=True, text=True, check=True
    ).stdout
    for line in lines.splitlines():
        fields = line.split("|")
        if fields[2] == "B" and fields[5] in watched:
            expected[fields[5]].add(("rrc05", fields[3], int(fields[4])))
    assert sum(len(v) for v in expected.values()) > 5  # root /24s were routed in 2002 too

    server = ArchiveServer({RIB: rib})
    url = server.start()
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        assert _follow(store, url, tmp_path).processed == 1
        saved = store.get_snapshot(f"{ROOT_PEERS_SNAPSHOT}/ris/rrc05")
        assert saved is not None
        assert saved[0] == parse_when("2002-07-22T23:37Z").timestamp()  # the file's time
        body = json.loads(saved[1])
        assert body["file"] == "bview.20020722.2337.gz"
        got = {
            prefix: {(c, a, asn) for c, a, asn, routes in item["peers"] if routes == [prefix]}
            for prefix, item in body["prefixes"].items()
        }
        assert got == expected
    finally:
        store.close()
        server.stop()


def test_a_later_file_replaces_it_an_older_one_does_not(
    shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    mrt = shared_data / "mrt/bgpdump"
    server = ArchiveServer(
        {RIB: mrt / "bview.20020722.2337.gz", UPDATES: mrt / "updates.20100722.2015.gz"}
    )
    url = server.start()
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        assert _follow(store, url, tmp_path).processed == 2
        name = f"{ROOT_PEERS_SNAPSHOT}/ris/rrc05"
        saved = store.get_snapshot(name)
        assert saved is not None and json.loads(saved[1])["file"] == "updates.20100722.2015.gz"
        assert saved[0] == parse_when("2010-07-22T20:15Z").timestamp()
        # a RIB older than the saved state (a late retry) is not taken over it
        follower = fl.Follower(
            store,
            fl.FollowOptions(bases={"ris": url}, collectors=("rrc05",), cache_dir=tmp_path),
            proc.ProcessConfig(),
        )
        older = arc.ArchiveFile(
            source="ris",
            collector="rrc05",
            kind="rib",
            name="bview.20020722.2337.gz",
            url=url,
            time=parse_when("2002-07-22T23:37Z").timestamp(),
            size=None,
        )
        follower._save_root_peers(older, {})
        assert store.get_snapshot(name) == saved
    finally:
        store.close()
        server.stop()
