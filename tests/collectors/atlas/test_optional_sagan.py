"""ripe-atlas-sagan (GPLv3) is the optional ``atlas`` extra: without it ``import atlas`` says so
in one line and the rest of publiccore works.

The child process runs with ``ripe.atlas.sagan`` made unimportable
(``sys.modules["ripe.atlas.sagan"] = None``: importing it raises ModuleNotFoundError, as for a
package that is not installed).
"""

from __future__ import annotations

import pathlib
import subprocess
import sys

from publiccore.collectors.atlas import commands

REPO = pathlib.Path(__file__).resolve().parents[3]

_CHILD = """
import sys
sys.modules["ripe.atlas.sagan"] = None  # as if ripe-atlas-sagan were not installed
from publiccore.app import cli
code = cli.main(sys.argv[1:])
assert sys.modules["ripe.atlas.sagan"] is None
sys.exit(code)
"""


def _run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _CHILD, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )


def test_import_atlas_without_sagan_is_one_clear_line(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    path = atlas_dir / "ripe-atlas-monitor" / "1071935.json"
    done = _run("import", "atlas", "--store", str(tmp_path / "s.sqlite"), str(path))
    assert done.returncode == 1
    assert done.stderr == f"publiccore: error: {commands.SAGAN_MISSING}\n"
    assert "publiccore[atlas]" in done.stderr and "GPLv3" in done.stderr
    assert not (tmp_path / "s.sqlite").exists()  # refused before anything was opened


def test_the_rest_of_publiccore_needs_no_sagan(tmp_path: pathlib.Path) -> None:
    done = _run("config", "show")
    assert done.returncode == 0, done.stderr
    assert "[atlas]" in done.stdout


def test_with_sagan_installed_the_check_passes() -> None:
    commands.require_sagan()  # the test extra installs it (pyproject: test, atlas)
