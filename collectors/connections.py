"""Connection limits for the collector's HTTP server: one client must not hold it hostage.

``GuardedRunner`` is an aiohttp ``AppRunner`` whose connections are counted and bounded:

- at most ``max_connections_per_address`` open connections from one source address (one more is
  closed as soon as it is accepted; ``per_address_exempt``, by default this host's loopback
  addresses, are exempt: a reverse proxy in front makes every connection its own);
- at most ``max_connections`` per serve process: when that is reached, the oldest connection
  without a request in progress (slow or idle) is closed to make room, so slow clients from
  many addresses cannot lock an honest probe out. The cap is held under the process's
  descriptor limit, so accepting does not fail with "Too many open files";
- a new connection must complete its first request's headers within ``header_timeout_seconds``;
  an idle keep-alive connection (or a later request's headers) gets ``keepalive_timeout_seconds``
  (aiohttp's keep-alive timer, which partial data does not extend);
- the body read timeout and the close after an early refusal are the ingest handler's
  (``collectors.ingest``).

``install_log_hygiene`` rate-limits repeated log lines (a flood of identical errors must not fill
the disk) and keeps peer addresses out of aiohttp's "Error handling request" lines (the
collector never records a probe's address).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import resource
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("publiccore.serve")

RESERVED_DESCRIPTORS = 64  # kept free below RLIMIT_NOFILE for the store, logs, pipes, DNS


@dataclasses.dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The limits of ``[serve]`` (see ``publiccore.config.ServeSettings``)."""

    max_connections: int = 512
    max_connections_per_address: int = 32
    header_timeout_seconds: float = 10.0
    keepalive_timeout_seconds: float = 15.0
    per_address_exempt: frozenset[str] = frozenset({"127.0.0.1", "::1"})  # a reverse proxy


def descriptor_cap(wanted: int) -> int:
    """``wanted``, lowered to fit the process's descriptor limit (raising the soft limit first).

    Returns at least 1.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - RESERVED_DESCRIPTORS))


class ConnectionGuard:
    """Counts open connections, in all and per source address; admits or refuses new ones."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.max_connections = descriptor_cap(limits.max_connections)
        if self.max_connections < limits.max_connections:
            log.warning(
                "serve.max_connections %d lowered to %d to fit the descriptor limit "
                "(raise LimitNOFILE)",
                limits.max_connections,
                self.max_connections,
            )
        self.open = 0
        self.by_address: collections.Counter[str] = collections.Counter()
        # connections with no request in progress (new or idle), oldest first: evicted first
        self.waiting: collections.OrderedDict[GuardedHandler, None] = collections.OrderedDict()
        self.refused = 0
        self.evicted = 0
        self.timed_out = 0

    def admit(self, handler: GuardedHandler, address: str) -> bool:
        """Count a new connection from ``address``; False (not counted) when over a cap.

        Over the per-address cap the new connection is refused. Over the total cap the oldest
        connection without a request in progress (a slow or idle client) is closed to make room;
        only when every connection is busy with a request is the new one refused.
        """
        if (
            self.by_address[address] >= self.limits.max_connections_per_address
            and address.removeprefix("::ffff:") not in self.limits.per_address_exempt
        ):
            return self._refuse("over the per-address connection cap")
        if self.open >= self.max_connections:
            if not self.waiting:
                return self._refuse("over the connection cap, every connection busy")
            oldest, _ = self.waiting.popitem(last=False)
            self.evicted += 1
            log.warning("connection cap reached: closed the oldest connection without a request")
            oldest.evict()
        self.open += 1
        self.by_address[address] += 1
        self.waiting[handler] = None
        return True

    def _refuse(self, why: str) -> bool:
        self.refused += 1
        log.warning("connection refused: %s", why)
        return False

    def busy(self, handler: GuardedHandler) -> None:
        """A request is in progress on ``handler``: it is not evicted meanwhile."""
        self.waiting.pop(handler, None)

    def idle(self, handler: GuardedHandler) -> None:
        """``handler`` finished its request and waits for the next (newest idle one)."""
        if handler.address is not None:
            self.waiting[handler] = None

    def release(self, handler: GuardedHandler, address: str) -> None:
        """Forget a connection ``admit`` counted."""
        self.waiting.pop(handler, None)
        self.open -= 1
        self.by_address[address] -= 1
        if self.by_address[address] <= 0:
            del self.by_address[address]


class GuardedHandler(RequestHandler):
    """aiohttp's request handler, admitted by a guard, with a deadline for the first headers."""

    def __init__(self, manager: Any, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self.guard = guard
        self.address: str | None = None  # kept only while open, for the per-address count
        self.request_seen = False
        self.header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        self.address = address
        if not self.guard.admit(self, address):
            self.address = None
            self.force_close()
            return
        self.header_timer = asyncio.get_running_loop().call_later(
            self.guard.limits.header_timeout_seconds, self._headers_late
        )

    def evict(self) -> None:
        """Close this connection to make room for a new one (it had no request in progress)."""
        self._release()
        self.force_close()

    def request_started(self) -> None:
        """A request's headers arrived: the first-headers deadline no longer applies."""
        self.request_seen = True
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        self.guard.busy(self)

    def request_finished(self) -> None:
        """The request was answered: the connection waits for the next one (evictable)."""
        self.guard.idle(self)

    def _release(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
            self.header_timer = None
        if self.address is not None:
            self.guard.release(self, self.address)
            self.address = None

    def _headers_late(self) -> None:
        self.header_timer = None
        if not self.request_seen:
            self.guard.timed_out += 1
            log.warning("connection closed: no request headers within the header timeout")
            self.force_close()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._release()
        super().connection_lost(exc)


class GuardedServer(web.Server):
    """aiohttp's low-level server making ``GuardedHandler`` protocols."""

    def __init__(self, handler: Any, *, guard: ConnectionGuard, **kwargs: Any) -> None:
        handler_kwargs = {
            k: v
            for k, v in kwargs.items()
            if k not in ("request_factory", "handler_cancellation", "loop")
        }
        super().__init__(handler, **kwargs)
        self.guard = guard
        self.handler_kwargs = handler_kwargs
        self.loop = kwargs.get("loop") or asyncio.get_running_loop()

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self.loop, guard=self.guard, **self.handler_kwargs)


class GuardedRunner(web.AppRunner):
    """An ``AppRunner`` whose connections go through a ``ConnectionGuard``."""

    def __init__(self, app: web.Application, *, limits: ConnectionLimits, **kwargs: Any) -> None:
        kwargs.setdefault("keepalive_timeout", limits.keepalive_timeout_seconds)
        super().__init__(app, **kwargs)
        self.limits = limits
        self.server_kwargs = {k: v for k, v in kwargs.items() if k != "handle_signals"}
        self.guard: ConnectionGuard | None = None

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()
        self.guard = ConnectionGuard(self.limits)
        return GuardedServer(
            plain.request_handler,
            request_factory=plain.request_factory,
            guard=self.guard,
            **self.server_kwargs,
        )


@web.middleware
async def request_started(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Middleware telling a ``GuardedHandler`` that a request's headers arrived."""
    protocol = request.protocol
    if not isinstance(protocol, GuardedHandler):
        return await handler(request)
    protocol.request_started()
    try:
        return await handler(request)
    finally:
        protocol.request_finished()


# --- logs ---------------------------------------------------------------------------------------


class RateLimitFilter(logging.Filter):
    """Pass at most ``burst`` records per ``period_seconds`` for each message template.

    The next record that passes after some were held back says how many (`` (N similar lines
    suppressed)``).
    """

    def __init__(
        self,
        *,
        burst: int = 10,
        period_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.burst = burst
        self.period = period_seconds
        self.monotonic = monotonic
        self._lock = threading.Lock()
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = self.monotonic()
        with self._lock:
            start, passed, held = self._windows.get(key, (now, 0, 0))
            if now - start >= self.period:
                start, passed = now, 0
            if passed >= self.burst:
                self._windows[key] = (start, passed, held + 1)
                return False
            self._windows[key] = (start, passed + 1, 0)
            if len(self._windows) > 1000:  # many distinct templates: forget the oldest
                self._windows.pop(next(iter(self._windows)))
        if held:
            record.msg = f"{record.msg} ({held} similar lines suppressed)"
        return True


class PeerRedactFilter(logging.Filter):
    """Drop the peer address from aiohttp's "Error handling request from %s" lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Error handling request"):
            record.msg = "Error handling request (peer address not logged)"
            record.args = ()
        return True


_INSTALLED: set[str] = set()
_HYGIENE_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "asyncio", log.name)


def install_log_hygiene() -> None:
    """Add the redacting and rate-limiting filters to the server's loggers (once)."""
    for name in _HYGIENE_LOGGERS:
        if name in _INSTALLED:
            continue
        logger = logging.getLogger(name)
        logger.addFilter(PeerRedactFilter())
        logger.addFilter(RateLimitFilter())
        _INSTALLED.add(name)
