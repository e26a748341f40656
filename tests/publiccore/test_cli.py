"""The command line as a process: exit statuses and how it ends when its reader goes away."""

from __future__ import annotations

import subprocess
import sys


def test_a_closed_pipe_ends_quietly() -> None:
    # ~70 KB of JSON, more than a pipe holds: the writer meets the closed pipe mid-way.
    process = subprocess.Popen(
        [sys.executable, "-m", "publiccore", "events", "list", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) == 0, err
    assert "Traceback" not in err and err == ""


def test_bad_arguments_exit_2_with_usage() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "publiccore", "run", "--rounds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 2 and "--rounds: must be at least 1" in run.stderr
