"""``RootConfig.from_settings``: the round ``[root]`` describes, built in one place."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib

import pytest
from publiccore.probes import dnssec
from publiccore.probes.root import RootConfig

from publiccore import config as cfg
from publiccore.errors import ConfigError, InputError


def test_settings_and_overrides() -> None:
    settings = dataclasses.replace(
        cfg.RootSettings(), timeout_seconds=2.5, concurrency=8, udp_payload_bytes=1400
    )
    built = RootConfig.from_settings(settings)
    assert built.anchors == tuple(dnssec.load_anchors(None))  # the bundled anchors
    assert (built.timeout_seconds, built.concurrency, built.udp_payload_bytes) == (2.5, 8, 1400)
    assert built.validation_time is None
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    over = RootConfig.from_settings(
        settings, timeout_seconds=1.0, concurrency=2, validation_time=when
    )
    assert (over.timeout_seconds, over.concurrency, over.validation_time) == (1.0, 2, when)


def test_anchors_file_from_settings_or_override(tmp_path: pathlib.Path) -> None:
    bundled = dnssec.bundled_anchors_path()
    copy = tmp_path / "anchors.xml"
    copy.write_bytes(bundled.read_bytes())
    settings = dataclasses.replace(cfg.RootSettings(), anchors=str(tmp_path / "missing.xml"))
    with pytest.raises(InputError, match=r"missing\.xml"):
        RootConfig.from_settings(settings)
    assert RootConfig.from_settings(settings, anchors=str(copy)).anchors == tuple(
        dnssec.load_anchors(copy)
    )


def test_a_bad_setting_is_a_config_error() -> None:
    settings = dataclasses.replace(cfg.RootSettings(), concurrency=-1)
    with pytest.raises(ConfigError, match=r"\[root\]: concurrency must be at least 1"):
        RootConfig.from_settings(settings)
