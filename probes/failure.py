"""One classifier from what the network did to a short snake_case failure code.

``Failure`` lists every code a measurer writes into a record's ``failure`` field; a ``StrEnum``,
so a record holds (and serialises) the plain text. ``rcode`` reads a record's RCODE text back as
dnspython's ``dns.rcode.Rcode``.
"""

from __future__ import annotations

import asyncio
import enum
import errno

import dns.exception
import dns.message
import dns.query
import dns.rcode


class Failure(enum.StrEnum):
    """Why a query or a trace gave nothing usable (the record's ``failure`` text)."""

    DNS_TIMEOUT = "dns_timeout"
    TCP_REFUSED = "tcp_refused"
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_CLOSED = "connection_closed"
    UNEXPECTED_SOURCE = "unexpected_source"
    DNS_BAD_RESPONSE = "dns_bad_response"
    DNS_MALFORMED = "dns_malformed"
    NETWORK_UNREACHABLE = "network_unreachable"
    HOST_UNREACHABLE = "host_unreachable"
    ADDRESS_UNAVAILABLE = "address_unavailable"
    FAMILY_UNSUPPORTED = "family_unsupported"
    PERMISSION_DENIED = "permission_denied"
    GENERIC_TIMEOUT = "generic_timeout"
    UNKNOWN_FAILURE = "unknown_failure"
    TRUNCATED = "truncated"  # a DNS answer with TC set (root.py)
    NO_REPLY = "no_reply"  # a traceroute where no hop answered (traceroute.py)


_ERRNO_CODES = {
    errno.ENETUNREACH: Failure.NETWORK_UNREACHABLE,
    errno.EHOSTUNREACH: Failure.HOST_UNREACHABLE,
    errno.EADDRNOTAVAIL: Failure.ADDRESS_UNAVAILABLE,
    errno.EAFNOSUPPORT: Failure.FAMILY_UNSUPPORTED,
    errno.EACCES: Failure.PERMISSION_DENIED,
    errno.EPERM: Failure.PERMISSION_DENIED,
    errno.ETIMEDOUT: Failure.GENERIC_TIMEOUT,
}


def classify(exc: BaseException, *, transport: str = "udp") -> Failure:
    """Return the failure code for an exception raised while measuring."""
    if isinstance(exc, dns.exception.Timeout | asyncio.TimeoutError | TimeoutError):
        return Failure.DNS_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Failure.TCP_REFUSED if transport == "tcp" else Failure.CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError):
        return Failure.CONNECTION_RESET
    if isinstance(exc, EOFError | ConnectionAbortedError | BrokenPipeError):
        return Failure.CONNECTION_CLOSED
    if isinstance(exc, dns.query.UnexpectedSource):
        return Failure.UNEXPECTED_SOURCE
    if isinstance(exc, dns.query.BadResponse):
        return Failure.DNS_BAD_RESPONSE
    if isinstance(
        exc,
        dns.message.ShortHeader
        | dns.message.TrailingJunk
        | dns.exception.FormError
        | dns.message.BadEDNS,
    ):
        return Failure.DNS_MALFORMED
    if isinstance(exc, OSError) and exc.errno in _ERRNO_CODES:
        return _ERRNO_CODES[exc.errno]
    return Failure.UNKNOWN_FAILURE


def rcode(text: str | None) -> dns.rcode.Rcode | None:
    """The RCODE a record's ``rcode`` text names (``dns.rcode.to_text``'s output), else None."""
    if text is None:
        return None
    try:
        return dns.rcode.from_text(text)
    except (dns.rcode.UnknownRcode, ValueError):
        return None
