"""Events files: strict YAML (no duplicate keys, no unquoted booleans), exact ids, one-line
errors for bad encodings and deep nesting, in ``events validate`` and at ``serve`` start-up."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

from publiccore import events as ev
from publiccore.errors import InputError

GOOD = """events:
- id: no-2024-example
  date: '2024-01-02'
  date_precision: day
  country: {country}
  kind: law
  scope: [dns]
  title: {title}
  summary: An example.
  sources: [https://example.org/a]
  confidence: high
"""


def _write(tmp_path: pathlib.Path, data: str | bytes) -> pathlib.Path:
    path = tmp_path / "events.yaml"
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path


def test_a_good_file_loads(tmp_path: pathlib.Path) -> None:
    (event,) = ev.load_file(_write(tmp_path, GOOD.format(country="'NO'", title="Norway")))
    assert (event.id, event.country) == ("no-2024-example", "NO")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOOD.format(country="NO", title="x"), "unquoted 'NO' reads as a boolean"),
        (GOOD.format(country="'NL'", title="yes"), "unquoted 'yes' reads as a boolean"),
        (GOOD.format(country="'NL'", title="x") + "  title: again\n", "duplicate key 'title'"),
        (
            GOOD.format(country="'NL'", title="x").replace(
                "- id: no-2024-example", "- id: |\n    no-2024-example"
            ),
            "expected a lower-case slug",
        ),
        (
            GOOD.format(country="'NL'", title="x").replace(
                "- id: no-2024-example", "- id: 'no-2024-example '"
            ),
            "expected a lower-case slug",
        ),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
        ("a: &a [*a]\n" + "x: " + "[" * 3000 + "]" * 3000, "nested too deeply"),
        (GOOD.format(country="'NL'", title="caf\xe9").encode("latin-1"), "not UTF-8"),
        (GOOD.format(country="'NL'", title="x").encode("utf-16"), "not UTF-8"),
        (bytes(range(256)) * 4, "not UTF-8"),
        (b"events:\n- id: a\x00b\n", "not valid YAML"),
    ],
)
def test_bad_files_are_one_line_errors(
    tmp_path: pathlib.Path, data: str | bytes, message: str
) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(InputError, match=message) as info:
        ev.load_file(path)
    assert "\n" not in str(info.value)


def _cli(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "data",
    [
        GOOD.format(country="'NL'", title="caf\xe9").encode("utf-16"),
        ("[" * 50_000).encode(),
        GOOD.format(country="NO", title="x").encode(),
    ],
)
def test_validate_and_serve_answer_in_one_line(tmp_path: pathlib.Path, data: bytes) -> None:
    path = _write(tmp_path, data)
    done = _cli("events", "validate", str(path))
    assert done.returncode == 1
    assert done.stderr.startswith("publiccore: error: ") and done.stderr.count("\n") == 1
    config = tmp_path / "c.toml"
    config.write_text(f'[events]\nextra_files = ["{path}"]\n', encoding="utf-8")
    done = _cli(
        "serve",
        "--config",
        str(config),
        "--store",
        str(tmp_path / "s.sqlite"),
        "--listen",
        "127.0.0.1:0",
    )
    assert done.returncode == 1
    assert done.stderr.startswith("publiccore: error: ") and done.stderr.count("\n") == 1
