"""Archive layouts, names, schedule slots and the [bgp.follow] / [bgp.live] settings."""

from __future__ import annotations

import pytest
from publiccore.collectors.bgp import archive as arc
from publiccore.collectors.bgp.follow import configured_follower

from publiccore import config as cfg
from publiccore.clock import parse_when
from publiccore.errors import ConfigError, InputError
from publiccore.store import open_store


@pytest.mark.parametrize(
    ("collector", "kind", "url"),
    [
        ("rrc00", "rib", "https://data.ris.ripe.net/rrc00/2026.12/"),
        ("rrc25", "updates", "https://data.ris.ripe.net/rrc25/2026.12/"),
        ("route-views2", "rib", "https://archive.routeviews.org/bgpdata/2026.12/RIBS/"),
        (
            "route-views6",
            "updates",
            "https://archive.routeviews.org/route-views6/bgpdata/2026.12/UPDATES/",
        ),
    ],
)
def test_month_directories(collector: str, kind: arc.Kind, url: str) -> None:
    source = arc.source_of(collector)
    assert arc.month_directory(arc.DEFAULT_BASES[source], source, collector, 2026, 12, kind) == url


def test_names_round_trip_and_slots() -> None:
    when = parse_when("2026-12-01T08:00Z").timestamp()
    assert arc.file_name("ris", "rib", when) == "bview.20261201.0800.gz"
    assert arc.file_name("routeviews", "updates", when) == "updates.20261201.0800.bz2"
    assert arc.parse_name("bview.20261201.0800.gz", "ris") == ("rib", when)
    assert arc.parse_name("rib.20261201.0800.bz2", "routeviews") == ("rib", when)
    assert arc.parse_name("updates.20261201.0800.gz", "routeviews") is None
    assert arc.parse_name("bview.20261341.0800.gz", "ris") is None  # no 41st of month 13
    assert arc.slots(300, when + 1, when + 900) == [when + 300, when + 600, when + 900]
    assert arc.months(parse_when("2026-11-30").timestamp(), when) == [(2026, 11), (2026, 12)]


def test_bad_collector_and_source_are_refused() -> None:
    with pytest.raises(InputError, match="unknown collector"):
        arc.source_of("rrc0x")
    with pytest.raises(InputError, match="ris=URL"):
        arc.parse_source_overrides(["ripe=https://x"])
    assert arc.parse_source_overrides(["ris=http://127.0.0.1:1"]) == {"ris": "http://127.0.0.1:1"}


def test_follow_settings_ranges_and_toml() -> None:
    settings = cfg.from_mapping(
        {"bgp": {"follow": {"enabled": True, "collectors": ["rrc05"], "workers": 3}}}
    )
    assert settings.bgp.follow.collectors == ["rrc05"]
    assert "[bgp.follow]\nenabled = true" in cfg.to_toml(settings)
    assert "[bgp.live]" in cfg.to_toml(settings)
    with pytest.raises(ConfigError, match=r"bgp.follow.poll_seconds must be between 1 and"):
        cfg.from_mapping({"bgp": {"follow": {"poll_seconds": 0}}})
    with pytest.raises(ConfigError, match=r"unknown setting bgp\.follow\.nope"):
        cfg.from_mapping({"bgp": {"follow": {"nope": 1}}})
    with pytest.raises(ConfigError, match=r"bgp\.live\.withdrawn_peers"):
        cfg.from_mapping({"bgp": {"live": {"withdrawn_peers": 0}}})


def test_run_starts_the_follower_only_when_enabled(tmp_path) -> None:
    store = open_store(str(tmp_path / "s.sqlite"))
    try:
        assert configured_follower(store, cfg.Settings()) is None
        settings = cfg.from_mapping({"bgp": {"follow": {"enabled": True}}})
        follower = configured_follower(store, settings)
        assert follower is not None
        assert follower.options.collectors == ("rrc00", "route-views2")
        assert follower.options.bases["ris"] == "https://data.ris.ripe.net"
    finally:
        store.close()


def test_bgpdump_runs_with_the_malloc_tunable() -> None:
    from publiccore.collectors.bgp.bgpdump import MALLOC_TUNABLE, bgpdump_environment

    assert bgpdump_environment({})["GLIBC_TUNABLES"] == MALLOC_TUNABLE
    kept = bgpdump_environment({"GLIBC_TUNABLES": "glibc.malloc.top_pad=131072"})
    assert kept["GLIBC_TUNABLES"] == "glibc.malloc.top_pad=131072"  # a chosen pad is kept
    both = bgpdump_environment({"GLIBC_TUNABLES": "glibc.cpu.x86_ibt=off"})
    assert both["GLIBC_TUNABLES"] == f"glibc.cpu.x86_ibt=off:{MALLOC_TUNABLE}"
    assert "GLIBC_TUNABLES" not in bgpdump_environment({"PUBLICCORE_BGPDUMP_TUNABLE": ""})
