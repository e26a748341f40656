"""Check the import rules (``[tool.importlinter]`` in pyproject.toml) on the installed layout.

The repository keeps its stage folders at the top (``probes/``, ``collectors/``, ``exporters/``)
and setuptools' ``package-dir`` installs them as ``publiccore.probes`` and so on. import-linter
reads a package from one directory tree, so this script lays the sources out as they install
(copies, in a temporary directory, following ``package-dir``) and runs ``lint-imports`` there.
Exit status: that of ``lint-imports``.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import tempfile
import tomllib

REPO = pathlib.Path(__file__).resolve().parents[1]


def lay_out(target: pathlib.Path) -> None:
    """Copy every mapped package directory to where it installs under ``target``."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = project["tool"]["setuptools"]["package-dir"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, folder in sorted(mapping.items(), key=lambda item: item[0].count(".")):
        shutil.copytree(
            REPO / folder, target.joinpath(*package.split(".")), ignore=ignore, dirs_exist_ok=True
        )


def main() -> int:
    here = pathlib.Path(sys.executable).parent
    linter = shutil.which("lint-imports") or str(here / "lint-imports")
    with tempfile.TemporaryDirectory(prefix="publiccore-imports-") as tmp:
        lay_out(pathlib.Path(tmp))
        return subprocess.call([linter, "--no-cache", str(REPO / "pyproject.toml")], cwd=tmp)


if __name__ == "__main__":
    raise SystemExit(main())
