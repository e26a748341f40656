"""Helpers shared by the agent and ingest tests: real ``publiccore`` processes on loopback.

Other test files load this one by path (``load_support()``), so that ``tests/`` needs no package
``__init__`` (which would shadow the real ``collectors`` and ``probes`` packages on sys.path).
The tests at the bottom check the helpers themselves.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import http.client
import json
import os
import pathlib
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

from publiccore import records as rec

REPO = pathlib.Path(__file__).resolve().parents[2]
START_TIMEOUT = 90.0  # a bounded wait for a process to start (slow on a loaded machine)


def publiccore_cmd(*argv: str) -> list[str]:
    """The command line running this checkout's ``publiccore`` with the test's interpreter."""
    return [sys.executable, "-m", "publiccore", *argv]


def run_cli(
    *argv: str, prefix: Sequence[str] = (), timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, *publiccore_cmd(*argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def register_probe(
    store: pathlib.Path, *, country: str = "NL", asn: int = 64500, prefix: Sequence[str] = ()
) -> tuple[str, str]:
    """``publiccore probes add --json``; return (id, token)."""
    done = run_cli(
        "probes",
        "add",
        "--store",
        str(store),
        "--country",
        country,
        "--asn",
        str(asn),
        "--json",
        prefix=prefix,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    return out["id"], out["token"]


def write_toml(path: pathlib.Path, sections: dict[str, dict[str, Any]]) -> pathlib.Path:
    lines = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        for key, value in table.items():
            lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclasses.dataclass
class Collector:
    """A ``publiccore serve`` process; ``port`` is known once it is listening."""

    config: pathlib.Path
    store: pathlib.Path
    prefix: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[str] | None = None
    args: Sequence[str] = ()

    def start(self) -> Collector:
        listen = f"127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [
                *self.prefix,
                *publiccore_cmd(
                    "serve",
                    "--config",
                    str(self.config),
                    "--store",
                    str(self.store),
                    "--listen",
                    listen,
                    *self.args,
                ),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = _read_line(self.process, START_TIMEOUT)
        assert line.startswith("listening on http://127.0.0.1:"), line
        self.port = int(line.split()[2].rsplit(":", 1)[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        """SIGTERM and wait; return the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=10)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return code

    def stderr_text(self) -> str:
        assert self.process is not None and self.process.stderr is not None
        return self.process.stderr.read() if self.process.poll() is not None else ""


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                return process.stdout.readline().strip()
            if process.poll() is not None:
                err = process.stderr.read() if process.stderr else ""
                raise AssertionError(f"process exited {process.returncode}: {err}")
    raise AssertionError("process did not report its address in time")


def post(
    port: int,
    body: bytes,
    *,
    token: str | None,
    gzip_body: bool = False,
    headers: dict[str, str] | None = None,
    host: str = "127.0.0.1",
) -> tuple[int, dict[str, Any], dict[str, str]]:
    """POST a batch; return (status, decoded JSON body or {}, headers)."""
    all_headers = {"Content-Type": "application/json"}
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    if gzip_body:
        all_headers["Content-Encoding"] = "gzip"
    all_headers.update(headers or {})
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        try:
            conn.request("POST", "/api/v1/records", body=body, headers=all_headers)
        except (BrokenPipeError, ConnectionResetError):
            # the server answered (413, before the whole body) and closed: its answer is
            # still in the socket, read it as a client that stops sending would
            pass
        response = conn.getresponse()
        data = response.read()
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = {"_raw": data[:200].decode("latin-1")}
        return response.status, decoded, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def get(port: int, path: str, host: str = "127.0.0.1") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def store_ids(store: pathlib.Path) -> list[str]:
    """Every record id in a collector store (read straight from SQLite)."""
    db = sqlite3.connect(store, timeout=30)
    try:
        return [r[0] for r in db.execute("SELECT id FROM records")]
    finally:
        db.close()


def store_rows(store: pathlib.Path) -> list[tuple[Any, ...]]:
    """(id, probe id, country, ASN, canonical JSON) of every stored record (bodies through the
    store, which keeps them packed)."""
    from publiccore.store.sqlite import SqliteStore

    db = sqlite3.connect(store, timeout=30)
    try:
        rows = db.execute("SELECT id, probe_id, country, asn FROM records").fetchall()
    finally:
        db.close()
    with SqliteStore(store) as opened:
        return [(*row, opened.get_body(row[0])) for row in rows]


def spool_state(spool: pathlib.Path) -> tuple[list[str], dict[str, Any]]:
    """(ids still spooled, the spool's counters), read straight from SQLite.

    Before the agent created its tables this is ([], {}).
    """
    db = sqlite3.connect(spool, timeout=30)
    try:
        db.execute("BEGIN")  # one snapshot for both reads
        try:
            ids = [r[0] for r in db.execute("SELECT id FROM spool ORDER BY seq")]
            state = dict(db.execute("SELECT key, value FROM state").fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise
            return [], {}
        finally:
            db.execute("COMMIT")
        return ids, state
    finally:
        db.close()


def wait_until(predicate: Any, *, timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` (bounded in time); return whether it became true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def make_root_record(
    probe_id: str,
    *,
    started: dt.datetime | None = None,
    country: str | None = "NL",
    asn: int | None = 64500,
    letter: str = "a",
) -> rec.Record:
    """A realistic ``root-dns`` record (SOA over UDP and TCP answered, with a wire answer)."""
    started = started or dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    wire = (
        "q80EAAABAAEAAAABAAAGAAEAAAYAAQABUYAAQAFhBHJvb3Qtc2VydmVycwNuZXQABW5zdGxkDHZlcmlzaWdu"
    ) * 3
    queries = tuple(
        rec.DnsQuery(
            qname=".",
            qclass="IN",
            qtype="SOA",
            transport=t,
            rcode="NOERROR",
            aa=True,
            tc=False,
            rtt_seconds=0.0123,
            serial=2026112900,
            nsid_hex="6e73312e6c6178",
            nsid_text="ns1.lax",
            size_bytes=120,
            wire_b64=wire,
        )
        for t in ("udp", "tcp")
    )
    result = rec.RootResult(
        queries=queries,
        identity=rec.SiteIdentity(nsid="ns1.lax", hostname_bind="b1-lax"),
        integrity=rec.Integrity(
            outcome="iana", key_tags=(20326, 38696), validated_at="2026-11-29T00:00:00.000000Z"
        ),
    )
    return rec.make_record(
        kind="root-dns",
        probe=rec.ProbeRef(id=probe_id, asn=asn, country=country),
        target=rec.RootTarget(
            letter=letter, name=f"{letter}.root-servers.net", address="192.0.2.4", family="ipv4"
        ),
        result=result,
        started=started,
        finished=started + dt.timedelta(seconds=0.1),
    )


def batch_body(records: Sequence[rec.Record], *, lines: bool = False, gz: bool = False) -> bytes:
    if lines:
        text = "".join(r.dumps() + "\n" for r in records)
    else:
        text = "[" + ",".join(r.dumps() for r in records) + "]"
    data = text.encode("utf-8")
    return gzip.compress(data) if gz else data


def hints_file(path: pathlib.Path) -> pathlib.Path:
    """Root hints naming two servers on this host's loopback (nothing answers: records still)."""
    path.write_text(
        ".                    3600000  NS    A.ROOT-SERVERS.NET.\n"
        "A.ROOT-SERVERS.NET.  3600000  A     127.0.0.1\n"
        ".                    3600000  NS    B.ROOT-SERVERS.NET.\n"
        "B.ROOT-SERVERS.NET.  3600000  A     127.0.0.1\n",
        encoding="ascii",
    )
    return path


def agent_config(
    tmp: pathlib.Path,
    *,
    probe_id: str,
    token: str,
    collector_url: str,
    hints: pathlib.Path,
    quota: int = 100 * 1024 * 1024,
    batch: int = 50,
    interval: float = 0.3,
    extra: dict[str, dict[str, Any]] | None = None,
    name: str = "agent.toml",
) -> pathlib.Path:
    """A fast agent configuration: rounds every ``interval`` s, short timeouts and backoff."""
    sections: dict[str, dict[str, Any]] = {
        "probe": {
            "id": probe_id,
            "country": "DE",
            "asn": 1,
            "token": token,
            "collector_url": collector_url,
        },
        "root": {
            "hints": str(hints),
            "timeout_seconds": 0.2,
            "interval_seconds": interval,
            "start_delay_max_seconds": 0.05,
        },
        "agent": {
            "spool_path": str(tmp / "spool.sqlite"),
            "spool_quota_bytes": quota,
            "upload_batch_records": batch,
            "upload_interval_seconds": 0.2,
            "backoff_max_seconds": 0.5,
            "metrics_listen": "",
        },
    }
    for key, table in (extra or {}).items():
        sections.setdefault(key, {}).update(table)
    return write_toml(tmp / name, sections)


def start_agent(
    config: pathlib.Path, *, prefix: Sequence[str] = (), verbose: bool = False
) -> subprocess.Popen[str]:
    argv = ["agent", "run", "--config", str(config)] + (["-v"] if verbose else [])
    return subprocess.Popen(
        [*prefix, *publiccore_cmd(*argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )


def stop_process(
    process: subprocess.Popen[str], sig: int = signal.SIGTERM, timeout: float = 30.0
) -> tuple[int, str]:
    """Send ``sig``, wait (bounded); return (exit status, stderr)."""
    if process.poll() is None:
        process.send_signal(sig)
    try:
        _out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _out, err = process.communicate(timeout=10)
    return process.returncode, err


# --- the helpers' own tests ------------------------------------------------------------------


def test_make_root_record_round_trips() -> None:
    record = make_root_record("p1")
    assert rec.loads(record.dumps()) == record


def test_batch_body_forms_decode() -> None:
    from publiccore.collectors.ingest import gunzip_capped, split_batch

    records = [make_root_record("p1") for _ in range(3)]
    for lines in (False, True):
        body = batch_body(records, lines=lines, gz=True)
        items = split_batch(gunzip_capped(body, 10**6))
        assert [rec.parse_record(i) for i in items] == records
