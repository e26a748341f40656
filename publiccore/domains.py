"""Closed domains of the values that become metric labels or grouping keys, and their checks.

The ingest service (``collectors.ingest``) calls ``check_record`` on every parsed record before
storing it, so that nothing outside these domains ever reaches the store, the aggregates or a
Prometheus label: root letters ``a``–``m``, ISO 3166-1 alpha-2 countries (pycountry, plus the
``ZZ`` placeholder for "unknown"), IP addresses (``ipaddress``), bounded free text, valid Unicode
without lone surrogates (``json.loads`` turns ``"\\ud800"`` into one), a plausible time range and
no nil UUID. Families, transports and integrity outcomes are ``Literal`` fields the record parser
already holds to their values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pycountry

from publiccore.errors import RecordError
from publiccore.records import (
    INTEGRITY_OUTCOMES,
    Record,
    RootResult,
    RootTarget,
    TraceResult,
    TraceTarget,
)

LETTERS: tuple[str, ...] = tuple("abcdefghijklm")
FAMILIES: tuple[str, ...] = ("ipv4", "ipv6")
TRANSPORTS: tuple[str, ...] = ("udp", "tcp")
OUTCOMES: tuple[str, ...] = INTEGRITY_OUTCOMES
UNKNOWN_COUNTRY = "ZZ"  # ISO 3166-1 user-assigned: "unknown" (``publiccore run`` without a country)
NIL_UUID = "00000000-0000-0000-0000-000000000000"
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # no measurement of ours is older
MAX_CODE_CHARS = 64  # rcode, failure codes, qclass/qtype mnemonics
MAX_TEXT_CHARS = 1024  # names, identities, reasons, software name/version, probe ids
# wire_b64 and nsid_hex keep the parser's MAX_STRING (a base64 TCP answer of 64 KiB)


@functools.cache
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries) | {UNKNOWN_COUNTRY}


def is_country(code: str) -> bool:
    """Whether ``code`` is an assigned ISO 3166-1 alpha-2 code (upper case) or ``ZZ``."""
    return code in _countries()


def is_ip_address(text: str) -> bool:
    """Whether ``text`` is an IPv4 or IPv6 address in textual form (no prefix, no zone)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return "%" not in text


def check_record(
    record: Record,
    wire: Mapping[str, Any],
    *,
    now: dt.datetime,
    max_future_seconds: float,
    body: str | None = None,
) -> None:
    """Check a parsed record against every closed domain; raise RecordError naming the field.

    ``wire`` is its decoded JSON (for the Unicode check) and ``body`` its canonical JSON when the
    caller has it (``records.dumps_wire``; lets the Unicode check skip records without any
    ``\\u`` escape). Times must lie in [2000-01-01, now + ``max_future_seconds``].
    """
    if record.id == NIL_UUID:
        raise RecordError("the nil UUID is not a record id", "id")
    _check_unicode(wire, body)
    _check_text(record.probe.id, "probe.id", MAX_TEXT_CHARS)
    _check_text(record.software.name, "software.name", MAX_TEXT_CHARS)
    _check_text(record.software.version, "software.version", MAX_TEXT_CHARS)
    limit = now + dt.timedelta(seconds=max_future_seconds)
    for name, when in (("started", record.started), ("finished", record.finished)):
        if when < EARLIEST:
            raise RecordError("timestamp before 2000-01-01", name)
        if when > limit:
            raise RecordError(f"more than {max_future_seconds:g} s in the future", name)
    target, result = record.target, record.result
    if isinstance(target, RootTarget) and isinstance(result, RootResult):
        _check_root(target, result)
    elif isinstance(target, TraceTarget) and isinstance(result, TraceResult):
        _check_trace(target, result)


def _check_root(target: RootTarget, result: RootResult) -> None:
    if target.letter not in LETTERS:
        raise RecordError(f"expected a root letter a-m, got {target.letter[:8]!r}", "target.letter")
    _check_text(target.name, "target.name", MAX_TEXT_CHARS)
    _check_address(target.address, "target.address")
    for i, query in enumerate(result.queries):
        where = f"result.queries[{i}]"
        _check_text(query.qname, f"{where}.qname", MAX_TEXT_CHARS)
        for name in ("qclass", "qtype", "rcode", "failure"):
            _check_text(getattr(query, name), f"{where}.{name}", MAX_CODE_CHARS)
        _check_text(query.nsid_text, f"{where}.nsid_text", MAX_TEXT_CHARS)
    identity = result.identity
    for name in ("nsid", "hostname_bind", "id_server"):
        _check_text(getattr(identity, name), f"result.identity.{name}", MAX_TEXT_CHARS)
    integrity = result.integrity
    _check_text(integrity.reason, "result.integrity.reason", MAX_TEXT_CHARS)
    _check_text(integrity.validated_at, "result.integrity.validated_at", MAX_CODE_CHARS)
    for i, field in enumerate(result.consistency.differs):
        _check_text(field, f"result.consistency.differs[{i}]", MAX_CODE_CHARS)


def _check_trace(target: TraceTarget, result: TraceResult) -> None:
    _check_address(target.address, "target.address")
    _check_text(target.name, "target.name", MAX_TEXT_CHARS)
    _check_text(result.failure, "result.failure", MAX_CODE_CHARS)
    for h, hop in enumerate(result.hops):
        for r, reply in enumerate(hop.replies):
            if reply.address is not None:
                _check_address(reply.address, f"result.hops[{h}].replies[{r}].address")


def _check_address(text: str, path: str) -> None:
    if len(text) > 64 or not is_ip_address(text):
        raise RecordError("not an IP address", path)


def _check_text(text: str | None, path: str, limit: int) -> None:
    if text is not None and len(text) > limit:
        raise RecordError(f"string too long ({len(text)} > {limit})", path)


def _check_unicode(wire: Mapping[str, Any], body: str | None) -> None:
    """Refuse a lone surrogate anywhere (it cannot be encoded as UTF-8 for any reader)."""
    if body is not None and "\\u" not in body:
        return  # json.dumps escapes every non-ASCII character: none here
    try:
        json.dumps(wire, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return
    for path, text in _strings(wire, ""):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise RecordError("not valid Unicode (a lone surrogate)", path) from None
    raise RecordError("not valid Unicode (a lone surrogate)")  # a key, then


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _strings(item, f"{path}[{i}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from _strings(getattr(value, field.name), f"{path}.{field.name}")
