"""Connection limits of ``publiccore serve``: slow, idle and refused clients cannot hold it.

Real ``publiccore serve`` processes on 127.0.0.1 (one with its descriptor limit lowered to 256
by ``resource.setrlimit`` before it starts), raw sockets for the hostile clients (from other
loopback addresses, 127.0.0.2…, so the per-address cap is exercised apart from the probe's),
and ``http.client`` for the honest probe. Every wait is a bounded poll; nothing is timed.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import logging
import pathlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from publiccore.collectors.connections import RateLimitFilter

from publiccore.app import services


def load_support() -> Any:
    name = "publiccore_test_ingest_support"
    if name not in sys.modules:
        path = pathlib.Path(__file__).with_name("test_ingest_support.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


S = load_support()
FD_LIMIT = 256
LOW_FD_PREFIX = (
    sys.executable,
    "-c",
    "import os, resource, sys; "
    f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); "
    "os.execv(sys.argv[1], sys.argv[1:])",
)
PARTIAL_HEADERS = b"POST /api/v1/records HTTP/1.1\r\nHost: collector\r\nContent-Le"


def _collector(tmp: pathlib.Path, serve: dict[str, Any], **kwargs: Any) -> Any:
    config = S.write_toml(tmp / "c.toml", {"serve": serve})
    collector = S.Collector(config=config, store=tmp / "store.sqlite", **kwargs)
    collector.probe = S.register_probe(collector.store)
    return collector.start()


@contextlib.contextmanager
def _running(collector: Any) -> Iterator[Any]:
    """Yield ``collector``; then SIGTERM it and check it exits 0 (its stderr stays readable)."""
    try:
        yield collector
    finally:
        process = collector.process
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        assert process.returncode == 0


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (EOF or reset), without blocking."""
    try:
        data = sock.recv(65536, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return False
    except OSError:
        return True
    return data == b"" or _closed_by_peer(sock)  # a response first, then EOF


def _slow_client(port: int, source: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(None)  # blocking: MSG_DONTWAIT then answers at once
    with contextlib.suppress(OSError):
        sock.sendall(PARTIAL_HEADERS)
    return sock


def _upload(port: int, token: str, probe_id: str) -> int:
    body = S.batch_body([S.make_root_record(probe_id)])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request(
            "POST",
            "/api/v1/records",
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def test_a_probe_uploads_while_many_slow_clients_are_open(tmp_path: pathlib.Path) -> None:
    collector = _collector(
        tmp_path,
        {"header_timeout_seconds": 5.0, "max_connections_per_address": 16},
        prefix=LOW_FD_PREFIX,
    )
    slow: list[socket.socket] = []
    with _running(collector):
        probe_id, token = collector.probe
        try:
            for i in range(20 * 20):  # 400 connections from 127.0.0.2 … 127.0.0.21
                slow.append(_slow_client(collector.port, f"127.0.0.{2 + i % 20}"))
            assert _upload(collector.port, token, probe_id) == 200  # evicts the oldest slow one
            cap = FD_LIMIT - 64  # serve.max_connections (512) lowered to fit the limit
            assert S.wait_until(
                lambda: sum(not _closed_by_peer(s) for s in slow) <= cap, timeout=30
            )
            assert _upload(collector.port, token, probe_id) == 200
            # and the header timeout closes every one of them in the end
            assert S.wait_until(lambda: all(_closed_by_peer(s) for s in slow), timeout=60)
        finally:
            for sock in slow:
                sock.close()
        assert _upload(collector.port, token, probe_id) == 200
        assert len(S.store_ids(collector.store)) == 3
    err = collector.process.stderr.read() if not collector.process.stderr.closed else ""
    assert len(err) < 100_000  # repeated lines are rate-limited


def test_per_address_cap(tmp_path: pathlib.Path) -> None:
    collector = _collector(
        tmp_path, {"max_connections_per_address": 4, "per_address_exempt": ["127.0.0.10"]}
    )
    with _running(collector):
        socks = [_slow_client(collector.port, "127.0.0.9") for _ in range(10)]
        proxy = [_slow_client(collector.port, "127.0.0.10") for _ in range(10)]
        try:
            assert S.wait_until(lambda: sum(not _closed_by_peer(s) for s in socks) == 4, timeout=30)
            assert not any(_closed_by_peer(s) for s in proxy)  # the exempt address
            probe_id, token = collector.probe
            assert _upload(collector.port, token, probe_id) == 200  # another address
        finally:
            for sock in socks + proxy:
                sock.close()


def _raw_request(port: int, head: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(head)
    return sock


def _blocking(sock: socket.socket) -> socket.socket:
    sock.settimeout(None)
    return sock


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_refused_body_is_not_read(tmp_path: pathlib.Path) -> None:
    collector = _collector(tmp_path, {})
    total = 256 * 1024 * 1024
    with _running(collector):
        sock = _raw_request(
            collector.port,
            b"POST /api/v1/records HTTP/1.1\r\nHost: c\r\nAuthorization: Bearer nope\r\n"
            + f"Content-Length: {total}\r\nContent-Type: application/json\r\n\r\n".encode(),
        )
        sent = 0
        chunk = b" " * (1024 * 1024)
        try:
            with contextlib.suppress(OSError):  # EPIPE / ECONNRESET once the server closed
                while sent < total:
                    sent += sock.send(chunk)
            status = _read_status(sock)
        except OSError:
            status = 401  # the reset came before the answer could be read back
        finally:
            sock.close()
        assert status == 401
        assert sent < total // 4, sent  # the server stopped reading at once


def test_a_stalled_body_is_answered_408_and_closed(tmp_path: pathlib.Path) -> None:
    collector = _collector(tmp_path, {"body_timeout_seconds": 1.0})
    with _running(collector):
        _probe_id, token = collector.probe
        sock = _raw_request(
            collector.port,
            b"POST /api/v1/records HTTP/1.1\r\nHost: c\r\n"
            + f"Authorization: Bearer {token}\r\n".encode()
            + b"Content-Length: 1000\r\nContent-Type: application/json\r\n\r\n[{",
        )
        try:
            assert _read_status(sock) == 408
            assert S.wait_until(lambda: _closed_by_peer(_blocking(sock)), timeout=30)
        finally:
            sock.close()
        _status, body = S.get(collector.port, "/metrics")
        assert 'publiccore_ingest_rejected_records_total{reason="body_timeout"} 1.0' in (
            body.decode()
        )


def test_an_idle_keepalive_connection_is_closed(tmp_path: pathlib.Path) -> None:
    collector = _collector(tmp_path, {"keepalive_timeout_seconds": 1.0})
    with _running(collector):
        sock = _raw_request(collector.port, b"GET /healthz HTTP/1.1\r\nHost: c\r\n\r\n")
        try:
            assert _read_status(sock) == 200
            assert S.wait_until(lambda: _closed_by_peer(_blocking(sock)), timeout=30)
        finally:
            sock.close()


def test_a_500_does_not_log_the_peer_address(caplog: pytest.LogCaptureFixture) -> None:
    import asyncio

    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("boom")

    async def main() -> int:
        app = web.Application()
        app.router.add_get("/broken", broken)
        runner, urls = await services.start_site(app, "127.0.0.1", 0)
        try:
            port = int(urls[0].rsplit(":", 1)[1])
            status, _body = await asyncio.to_thread(S.get, port, "/broken")
            return status
        finally:
            await runner.cleanup()

    with caplog.at_level(logging.ERROR):
        assert asyncio.run(main()) == 500
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Error handling request" in text
    assert "127.0.0.1" not in text


def test_rate_limit_filter_counts_what_it_held_back() -> None:
    now = [0.0]
    flt = RateLimitFilter(burst=3, period_seconds=60, monotonic=lambda: now[0])

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("asyncio", logging.ERROR, __file__, 1, msg, (), None)

    passed = [flt.filter(record("accept failed")) for _ in range(1000)]
    assert passed.count(True) == 3
    assert flt.filter(record("another message"))
    now[0] = 61.0
    again = record("accept failed")
    assert flt.filter(again)
    assert again.getMessage() == "accept failed (997 similar lines suppressed)"


def test_limits_follow_the_settings() -> None:
    from publiccore import config

    settings = config.from_mapping({"serve": {"max_connections": 7, "header_timeout_seconds": 2}})
    limits = services.connection_limits(settings)
    assert (limits.max_connections, limits.header_timeout_seconds) == (7, 2.0)


def test_units_set_a_descriptor_limit_that_fits_the_caps() -> None:
    from publiccore.collectors.connections import RESERVED_DESCRIPTORS

    from publiccore import config

    units = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "systemd"
    limits = {}
    for unit in ("publiccore-collector.service", "publiccore-agent.service"):
        lines = (units / unit).read_text(encoding="utf-8").splitlines()
        (value,) = [ln.split("=", 1)[1] for ln in lines if ln.startswith("LimitNOFILE=")]
        limits[unit] = int(value)
    serve = config.Settings().serve
    backlog = 1024  # services.start_site: asyncio may accept this many at once
    need = serve.max_connections + RESERVED_DESCRIPTORS + backlog
    assert limits["publiccore-collector.service"] >= need
    assert limits["publiccore-agent.service"] >= config.Settings().root.concurrency * 4
