"""`publiccore probe root` argument and input errors: non-zero exit with a one-line reason."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "publiccore", "probe", "root", "--once", "--no-store", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--timeout", "-1"], 2, "must be positive"),
        (["--timeout", "soon"], 2, "not a number"),
        (["--concurrency", "0"], 2, "must be at least 1"),
        (["--hints", "/nonexistent/named.root"], 1, "cannot read root hints"),
        (["--anchors", "/nonexistent/anchors.xml"], 1, "cannot read trust anchors"),
        (["--validation-time", "last tuesday"], 1, "--validation-time"),
    ],
)
def test_bad_arguments(args: list[str], status: int, message: str) -> None:
    done = _run(*args)
    assert done.returncode == status
    assert message in done.stderr
    assert done.stdout == ""


def test_hints_without_root_ns(tmp_path: pathlib.Path) -> None:
    hints = tmp_path / "named.root"
    hints.write_text("a.example. 3600 A 192.0.2.1\n")
    done = _run("--hints", str(hints))
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "no NS records for the root" in done.stderr


def test_garbage_hints(tmp_path: pathlib.Path) -> None:
    hints = tmp_path / "named.root"
    hints.write_bytes(b"\x00\xff garbage ((\n")
    done = _run("--hints", str(hints))
    assert done.returncode == 1
    assert "root hints" in done.stderr


@pytest.mark.parametrize(
    "name",
    [
        "domainr-dnsr/named.root",
        "technitium/named.root",
        "miekg-dns/named.root",
        "dns-root-data/root.hints",
    ],
)
def test_real_hints_files_parse(shared_data: pathlib.Path, name: str) -> None:
    from publiccore import roothints

    servers = roothints.load_hints(shared_data / "root" / name)
    assert [s.letter for s in servers] == list("abcdefghijklm")
    assert all(s.ipv4 for s in servers)
