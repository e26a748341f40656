"""One classifier from what the network did to a short snake_case failure code."""

from __future__ import annotations

import asyncio
import errno

import dns.exception
import dns.message
import dns.query

_ERRNO_CODES = {
    errno.ENETUNREACH: "network_unreachable",
    errno.EHOSTUNREACH: "host_unreachable",
    errno.EADDRNOTAVAIL: "address_unavailable",
    errno.EAFNOSUPPORT: "family_unsupported",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.ETIMEDOUT: "generic_timeout",
}


def classify(exc: BaseException, *, transport: str = "udp") -> str:
    """Return the failure code for an exception raised while measuring."""
    if isinstance(exc, dns.exception.Timeout | asyncio.TimeoutError | TimeoutError):
        return "dns_timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "tcp_refused" if transport == "tcp" else "connection_refused"
    if isinstance(exc, ConnectionResetError):
        return "connection_reset"
    if isinstance(exc, EOFError | ConnectionAbortedError | BrokenPipeError):
        return "connection_closed"
    if isinstance(exc, dns.query.UnexpectedSource):
        return "unexpected_source"
    if isinstance(exc, dns.query.BadResponse):
        return "dns_bad_response"
    if isinstance(
        exc,
        dns.message.ShortHeader
        | dns.message.TrailingJunk
        | dns.exception.FormError
        | dns.message.BadEDNS,
    ):
        return "dns_malformed"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_CODES:
        return _ERRNO_CODES[exc.errno]
    return "unknown_failure"
