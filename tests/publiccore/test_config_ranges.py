"""Every setting has a valid range, checked at load with a one-line error naming it."""

from __future__ import annotations

import dataclasses
import pathlib
import subprocess
import sys

import pytest

from publiccore import config
from publiccore.errors import ConfigError


def test_every_setting_has_a_range() -> None:
    settings = config.Settings()
    names = {
        f"{section.name}.{f.name}"
        for section in dataclasses.fields(settings)
        if section.name != "source"
        for f in dataclasses.fields(getattr(settings, section.name))
    }
    assert names == set(config.RANGES)
    config.check_ranges(settings)  # the defaults are valid


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("serve", "aggregate_interval_seconds", 0),
        ("serve", "aggregate_interval_seconds", -1.0),
        ("serve", "max_future_seconds", 1e300),
        ("serve", "max_future_seconds", -5),
        ("serve", "max_body_bytes", 0),
        ("serve", "max_body_bytes", -1),
        ("serve", "header_timeout_seconds", 0),
        ("serve", "body_timeout_seconds", 1e9),
        ("serve", "max_connections", 0),
        ("serve", "max_connections_per_address", 0),
        ("serve", "rate_limit_burst", -1),
        ("serve", "listen", "nowhere"),
        ("serve", "per_address_exempt", ["proxy.example"]),
        ("agent", "spool_quota_bytes", -1),
        ("agent", "spool_quota_bytes", 0),
        ("agent", "upload_batch_records", 0),
        ("agent", "backoff_max_seconds", 0),
        ("agent", "metrics_listen", "9478"),
        ("root", "udp_payload_bytes", 70000),
        ("root", "udp_payload_bytes", 100),
        ("root", "timeout_seconds", 0),
        ("root", "concurrency", 0),
        ("root", "interval_seconds", -300),
        ("traceroute", "max_ttl", 256),
        ("probe", "asn", -1),
        ("probe", "asn", 2**32),
        ("probe", "country", "XX"),
        ("probe", "id", ""),
        ("probe", "collector_url", "ftp://collector"),
        ("store", "url", "mysql://db"),
        ("bgp", "full_feed_ratio", 1.5),
        ("bgp", "bin_seconds", 0),
        ("aggregate", "max_asn_share", 0),
        ("aggregate", "root_window_seconds", 0),
    ],
)
def test_out_of_range_is_refused_naming_the_setting(section: str, key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"^{section}\.{key} = .* is out of range: must be"):
        config.from_mapping({section: {key: value}})


@pytest.mark.parametrize("text", ["nan", "inf", "-inf"])
def test_non_finite_floats_are_refused(tmp_path: pathlib.Path, text: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[serve]\nmax_future_seconds = {text}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"serve\.max_future_seconds"):
        config.load(path)


def test_lower_case_country_is_accepted() -> None:
    assert config.from_mapping({"probe": {"country": "nl"}}).probe.country == "nl"


@pytest.mark.parametrize(
    "data",
    [
        '[probe]\ncountry = "NL"\n# caf\xe9\n'.encode("latin-1"),
        '[probe]\ncountry = "NL"\n'.encode("utf-16"),
        bytes(range(256)),
    ],
)
def test_a_config_that_is_not_utf8_is_a_one_line_error(tmp_path: pathlib.Path, data: bytes) -> None:
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    done = subprocess.run(
        [sys.executable, "-m", "publiccore", "--config", str(path), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("publiccore: error: config ") and "UTF-8" in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_serve_with_a_bad_setting_is_a_one_line_error(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[serve]\naggregate_interval_seconds = 0\n", encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "publiccore",
            "serve",
            "--config",
            str(path),
            "--store",
            str(tmp_path / "s.sqlite"),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr == (
        "publiccore: error: serve.aggregate_interval_seconds = 0.0 is out of range: "
        "must be a number >= 0.05 and <= 86400\n"
    )
