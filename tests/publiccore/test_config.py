"""Configuration: defaults, TOML overrides, precise errors, `config show`."""

from __future__ import annotations

import pathlib
import tomllib

import pytest

from publiccore import config
from publiccore.app.cli import main
from publiccore.errors import ConfigError


def test_defaults_without_file(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("PUBLICCORE_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    settings = config.load()
    assert settings.root.timeout_seconds == 4.0
    assert settings.bgp.full_feed_ratio == 0.75
    assert settings.source == ""


def test_file_overrides_and_show_round_trips(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[root]\ntimeout_seconds = 2\n[probe]\ncountry = "NL"\ntoken = "secret"\n')
    settings = config.load(path)
    assert settings.root.timeout_seconds == 2.0
    assert main(["--config", str(path), "config", "show"]) == 0
    shown = capsys.readouterr().out
    assert "secret" not in shown
    parsed = tomllib.loads(shown)
    assert parsed["root"]["timeout_seconds"] == 2.0
    assert parsed["probe"]["country"] == "NL"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[root]\ntimeout = 2\n", "unknown setting root.timeout"),
        ("[root]\ntimeout_seconds = 'x'\n", "root.timeout_seconds must be float"),
        ("[nope]\n", "unknown setting nope"),
        ("root = 1\n", "must be a table"),
        ("[root\n", "not valid TOML"),
        ("[aggregate]\nsources = ['atlas']\n", "aggregate.sources"),
        ("[aggregate]\nsources = []\n", "aggregate.sources"),
    ],
)
def test_bad_files_are_rejected(tmp_path: pathlib.Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        config.load(path)


def test_missing_file_is_a_one_line_error(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--config", str(tmp_path / "none.toml"), "config", "show"]) == 1
    assert "cannot read config" in capsys.readouterr().err
