"""Failure codes and RCODEs: one classifier, enum values equal to the texts records hold."""

from __future__ import annotations

import errno
import json
import socket

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from publiccore.probes.failure import Failure, classify, rcode

from publiccore import records


@pytest.mark.parametrize(
    ("exc", "transport", "code"),
    [
        (dns.exception.Timeout(), "udp", "dns_timeout"),
        (TimeoutError(), "tcp", "dns_timeout"),
        (ConnectionRefusedError(), "tcp", "tcp_refused"),
        (ConnectionRefusedError(), "udp", "connection_refused"),
        (ConnectionResetError(), "tcp", "connection_reset"),
        (EOFError(), "tcp", "connection_closed"),
        (BrokenPipeError(), "tcp", "connection_closed"),
        (dns.query.BadResponse(), "tcp", "dns_bad_response"),
        (dns.message.ShortHeader(), "udp", "dns_malformed"),
        (OSError(errno.ENETUNREACH, "x"), "udp", "network_unreachable"),
        (OSError(errno.EHOSTUNREACH, "x"), "udp", "host_unreachable"),
        (OSError(errno.EADDRNOTAVAIL, "x"), "udp", "address_unavailable"),
        (OSError(errno.EAFNOSUPPORT, "x"), "udp", "family_unsupported"),
        (PermissionError(errno.EPERM, "x"), "raw", "permission_denied"),
        # OSError(ETIMEDOUT) is built as a TimeoutError: a timeout like any other
        (OSError(errno.ETIMEDOUT, "x"), "tcp", "dns_timeout"),
        (OSError(errno.EIO, "x"), "udp", "unknown_failure"),
        (ValueError("x"), "udp", "unknown_failure"),
    ],
)
def test_classify_gives_the_code(exc: BaseException, transport: str, code: str) -> None:
    failure = classify(exc, transport=transport)
    assert isinstance(failure, Failure)
    assert failure == code and failure.value == code


def test_a_real_refused_connection_is_classified() -> None:
    with socket.socket() as listener:  # bound, not listening: connect is refused
        listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        with socket.socket() as client, pytest.raises(OSError) as caught:
            client.connect(("127.0.0.1", port))
    assert classify(caught.value, transport="tcp") is Failure.TCP_REFUSED


def test_failure_serialises_as_its_text() -> None:
    query = records.DnsQuery(
        qname=".", qclass="IN", qtype="SOA", transport="udp", failure=Failure.DNS_TIMEOUT
    )
    plain = records.DnsQuery(
        qname=".", qclass="IN", qtype="SOA", transport="udp", failure="dns_timeout"
    )
    assert json.dumps(records._to_obj(query)) == json.dumps(records._to_obj(plain))
    assert query == plain
    assert all(code.value == code.value.lower() and " " not in code for code in Failure)


def test_rcode_reads_record_text() -> None:
    assert rcode("NOERROR") is dns.rcode.Rcode.NOERROR
    assert rcode(dns.rcode.to_text(dns.rcode.SERVFAIL)) is dns.rcode.Rcode.SERVFAIL
    assert rcode(None) is None
    assert rcode("not an rcode") is None
