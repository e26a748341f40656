"""``publiccore run`` in the DNS lab: one process measures real NSD root servers, stores the
rounds through its own ingest API and serves them on /metrics.

The process runs in the lab's probe namespace (its collector on that namespace's loopback), so
every packet stays in the lab. Needs root; skips otherwise (the lab fixture decides).
"""

from __future__ import annotations

import os
import pathlib
import signal
import stat
import subprocess
import sys
import time
from typing import Any

import pytest

from publiccore import records as rec
from publiccore.store import open_store

pytestmark = pytest.mark.lab

PORT = 18478
CONFIG = """
[probe]
country = "NL"
asn = 64500

[root]
interval_seconds = 2.0
timeout_seconds = 1.0

[serve]
aggregate_interval_seconds = 1.0
"""


def start_run(lab: Any, tmp_path: pathlib.Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "data"), PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        lab.probe_cmd(
            sys.executable,
            "-m",
            "publiccore",
            "--config",
            str(tmp_path / "c.toml"),
            "run",
            "--hints",
            str(lab.hints_path),
            "--store",
            str(tmp_path / "store.sqlite"),
            "--listen",
            f"127.0.0.1:{PORT}",
            *args,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def fetch_in_probe(lab: Any, path: str) -> str:
    """GET http://127.0.0.1:PORT/path from inside the probe namespace ('' if not answering)."""
    code = (
        "import sys, urllib.request\n"
        f"try: sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:{PORT}{path}', "
        "timeout=5).read().decode())\nexcept OSError: pass\n"
    )
    return lab.run_in_probe(sys.executable, "-c", code, timeout=30).stdout


def samples(text: str, name: str) -> dict[str, float]:
    return {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line.startswith(name + "{")
    }


def test_run_measures_stores_and_exports_in_one_process(
    dns_lab_default: Any, tmp_path: pathlib.Path
) -> None:
    lab = dns_lab_default
    assert lab.run_in_probe("ip", "link", "set", "lo", "up", timeout=30).returncode == 0
    (tmp_path / "c.toml").write_text(CONFIG)
    targets = sum(bool(s.ipv4) + bool(s.ipv6) for s in lab.servers)

    # 1. until Ctrl-C: /metrics shows what the lab did, from the process's own store
    process = start_run(lab, tmp_path, "--plain")
    try:
        reach: dict[str, float] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            reach = samples(fetch_in_probe(lab, "/metrics"), "publiccore_root_reachable_ratio")
            if any('letter="d"' in k for k in reach) and any('letter="a"' in k for k in reach):
                break
            time.sleep(0.5)
        assert reach, "no root aggregates on /metrics within 90 s"
        assert (
            reach[
                'publiccore_root_reachable_ratio{country="NL",family="ipv4",letter="a",'
                'transport="udp"}'
            ]
            == 1.0
        )
        assert (
            reach[
                'publiccore_root_reachable_ratio{country="NL",family="ipv4",letter="d",'
                'transport="udp"}'
            ]
            == 0.0
        )  # the silent server
        assert '"events"' in fetch_in_probe(lab, "/api/v1/events?country=RU")
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert "root round 1:" in out and "stopped:" in out

    # 2. --rounds: a second start reuses the local probe and stops by itself
    second = start_run(lab, tmp_path, "--rounds", "2")
    out2, err2 = second.communicate(timeout=120)
    assert second.returncode == 0, err2
    assert "stopped: 2 root rounds" in out2

    credentials = tmp_path / "store.run-probe.json"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    store = open_store(str(tmp_path / "store.sqlite"))
    try:
        probes = store.list_probes()
        records = list(store.iter_records(kind="root-dns"))
    finally:
        store.close()
    assert [(p.country, p.asn) for p in probes] == [("NL", 64500)]
    assert len(records) >= 3 * targets and len(records) % targets == 0
    assert {r.probe for r in records} == {rec.ProbeRef(id=probes[0].id, asn=64500, country="NL")}
    by_letter = {r.target.letter: r for r in records if isinstance(r.target, rec.RootTarget)}
    alternate = by_letter[lab.by_scenario("alternate")[0].letter].result
    assert isinstance(alternate, rec.RootResult)
    assert alternate.integrity.outcome == "alternate"
    # nothing left behind in the spool
    spool = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "agent",
            "status",
            "--json",
            "--spool",
            str(tmp_path / "store.run-spool.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"depth": 0' in spool.stdout


def test_run_refuses_bad_arguments(tmp_path: pathlib.Path) -> None:
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "run",
            "--hints",
            str(tmp_path / "missing.root"),
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=dict(os.environ, XDG_DATA_HOME=str(tmp_path)),
    )
    assert run.returncode == 1
    assert run.stderr.startswith("publiccore: error:") and "missing.root" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
