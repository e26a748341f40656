"""The bgp follow / live families: read from a real store, rendered, and checked by promtool."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from publiccore.collectors.bgp.live import PEERS_METRIC, WITHDRAWN_METRIC
from publiccore.collectors.bgp.watch import root_watch
from publiccore.exporters.prometheus import BgpFollowCollector

from publiccore.roothints import load_hints
from publiccore.store import Observation, open_store

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)

# watched root prefixes, read from the bundled hints as data (nothing is sent to them)
_WATCHED = {(w.letter, w.family): w.prefix for w in root_watch(load_hints())}
A_ROOT, B_ROOT = _WATCHED[("a", "ipv4")], _WATCHED[("b", "ipv4")]


def _file(store, name: str, when: float, status: str, owner: str = "t") -> None:
    assert store.claim_archive_file(
        source="ris",
        collector="rrc00",
        name=name,
        kind="updates",
        file_time=when,
        size=1,
        owner=owner,
        lease_until=when + 60,
        max_attempts=3,
        now=when,
    )
    assert store.finish_archive_file(
        source="ris",
        collector="rrc00",
        name=name,
        owner=owner,
        status=status,
        now=when,
        meta={"x": 1} if status == "done" else None,
        error="" if status == "done" else "bad",
    )


def test_families_from_the_store_pass_promtool(tmp_path) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        registry = CollectorRegistry()
        registry.register(BgpFollowCollector(store, clock=lambda: NOW))
        empty = generate_latest(registry).decode()
        assert "publiccore_bgp_follow_lag_seconds{" not in empty  # absent, not zero
        base = NOW.timestamp() - 3600
        _file(store, "updates.20261201.1055.gz", base - 300, "done")
        _file(store, "updates.20261201.1100.gz", base, "done")
        _file(store, "updates.20261201.1105.gz", base + 300, "failed")
        store.add_missing_files(
            source="ris", collector="rrc00", kind="updates", missing=4, checked_until=base
        )
        source = store.add_source("bgp-live", {})
        labels = {"prefix_set": "root", "letter": "a", "family": "ipv4"}
        store.put_observations(
            source,
            [
                Observation(
                    NOW - dt.timedelta(seconds=60),
                    "prefix",
                    A_ROOT,
                    WITHDRAWN_METRIC,
                    1.0,
                    labels,
                ),
                Observation(
                    NOW - dt.timedelta(seconds=60),
                    "prefix",
                    A_ROOT,
                    PEERS_METRIC,
                    7.0,
                    labels,
                ),
                Observation(
                    NOW - dt.timedelta(days=1),
                    "prefix",
                    B_ROOT,
                    PEERS_METRIC,
                    9.0,
                    labels,
                ),  # too old: not shown
            ],
        )
        text = generate_latest(registry).decode()
        samples = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }
        key = (("collector", "rrc00"), ("source", "ris"))
        assert samples[("publiccore_bgp_follow_lag_seconds", key)] == 3600.0
        assert samples[("publiccore_bgp_follow_files_processed_total", key)] == 2.0
        assert samples[("publiccore_bgp_follow_files_failed_total", key)] == 1.0
        assert samples[("publiccore_bgp_follow_missing_files_total", key)] == 4.0
        prefix = (("prefix", A_ROOT),)
        assert samples[("publiccore_bgp_live_peers", prefix)] == 7.0
        assert samples[("publiccore_bgp_live_prefix_withdrawn", prefix)] == 1.0
        assert ("publiccore_bgp_live_peers", (("prefix", B_ROOT),)) not in samples
        if shutil.which("promtool") is None:
            pytest.skip("promtool not installed")
        check = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
    finally:
        store.close()
