"""Shared test fixtures: where the real public data lives, and the netns lab plugins."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def shared_data_dir() -> pathlib.Path:
    """``../shared/data`` beside the checkout (override with ``PUBLICCORE_SHARED_DATA``)."""
    return pathlib.Path(os.environ.get("PUBLICCORE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real public data not found at {path} (set PUBLICCORE_SHARED_DATA)")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A real PostgreSQL server for the test session, on 127.0.0.1, torn down afterwards.

    ``PUBLICCORE_TEST_POSTGRES`` (a URL) uses an existing server instead. Otherwise Debian's
    server binaries (package ``postgresql``) start a throw-away cluster as user ``postgres``.
    """
    import glob
    import pwd
    import shutil
    import subprocess
    import tempfile
    import time

    if url := os.environ.get("PUBLICCORE_TEST_POSTGRES"):
        yield url
        return
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL server binaries not found (apt package postgresql)")
    bindir = pathlib.Path(initdb[-1]).parent
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("no 'postgres' system user to run the server as")
    if os.geteuid() not in (0, user.pw_uid):
        pytest.skip("starting a PostgreSQL server needs root or the postgres user")

    def as_postgres() -> None:
        if os.geteuid() == 0:
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)

    workdir = pathlib.Path(tempfile.mkdtemp(prefix="publiccore-pg-"))
    os.chown(workdir, user.pw_uid, user.pw_gid)
    data = workdir / "data"
    port = _free_port()
    subprocess.run(
        [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync"],
        check=True,
        capture_output=True,
        preexec_fn=as_postgres,
        timeout=120,
    )
    server = subprocess.Popen(
        [
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"unix_socket_directories={workdir}",
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=as_postgres,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        import psycopg

        deadline = time.monotonic() + 30
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail("PostgreSQL did not start within 30 s")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(workdir, ignore_errors=True)
