"""The record envelope (schema 2; schema 1 keeps parsing) and the typed result of every kind.

A record is the unit that is spooled, uploaded, stored and cited. ``Record.to_json`` gives the wire
form; ``parse_record`` turns a decoded JSON object back into a ``Record`` or raises ``RecordError``
naming the offending field. Every schema version ever emitted keeps parsing (see
``tests/fixtures/records``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import time
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

from publiccore import SOFTWARE_NAME, __version__
from publiccore.clock import parse_rfc3339, to_rfc3339
from publiccore.errors import RecordError

SCHEMA_VERSION = 2
# Every schema version ever emitted. Schema 2 added ``round`` (the id the measurer gives every
# record of one round) and ``source`` (where an imported record comes from); a schema 1 record
# has neither, and its wire form stays exactly as it was written.
SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)
SourceName = Literal["volunteer", "ripe-atlas"]
SOURCE_NAMES: tuple[str, ...] = typing.get_args(SourceName)
SOURCES: tuple[str, ...] = typing.get_args(SourceName)
Kind = Literal["root-dns", "traceroute"]
KINDS: tuple[str, ...] = typing.get_args(Kind)
Family = Literal["ipv4", "ipv6"]
Transport = Literal["udp", "tcp"]
ConsistencyStatus = Literal["consistent", "inconsistent", "unknown"]
# ``not_measured``: the source did not ask for the DNSKEY set (an import), so nothing is claimed.
IntegrityOutcome = Literal["iana", "bogus", "alternate", "unsigned", "no-answer", "not_measured"]
INTEGRITY_OUTCOMES: tuple[str, ...] = typing.get_args(IntegrityOutcome)

LEGACY_TRUNCATED = "truncated"  # a failure code older probes wrote for a TC answer (not a failure)
MAX_STRING = 262_144  # longest accepted string (a base64 TCP answer of 64 KiB fits)
MAX_ITEMS = 4_096  # longest accepted list
_COUNTRY = re.compile(r"[A-Z]{2}")  # used with fullmatch: "NL\n" is not a country


# --- envelope parts ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeRef:
    """Who measured: the probe id and its registered (coarse) country and ASN, never its address."""

    id: str
    asn: int | None = None
    country: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Software:
    """Who wrote the record: required on input, so provenance is never filled in by a reader."""

    name: str
    version: str


@dataclasses.dataclass(frozen=True, slots=True)
class RecordSource:
    """Provenance of a record: a volunteer probe, or an import (with what it was imported from)."""

    name: SourceName
    measurement: int | None = None
    file_sha256: str | None = None
    query: str | None = None


VOLUNTEER = RecordSource(name="volunteer")


# --- kind "root-dns" --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class RootTarget:
    letter: str
    name: str
    address: str
    family: Family


@dataclasses.dataclass(frozen=True, slots=True)
class DnsQuery:
    """One query and what came back; ``failure`` is a short code when nothing usable came back."""

    qname: str
    qclass: str
    qtype: str
    transport: Transport
    rcode: str | None = None
    aa: bool | None = None
    tc: bool | None = None
    rtt_seconds: float | None = None
    serial: int | None = None
    nsid_hex: str | None = None
    nsid_text: str | None = None
    size_bytes: int | None = None
    wire_b64: str | None = None
    failure: str | None = None

    @property
    def answered(self) -> bool:
        """RSSAC047 'answered': RCODE NOERROR within the timeout. A truncated answer counts:
        truncation is the ``tc`` flag (schema 1 records also wrote ``failure: "truncated"``)."""
        return self.rcode == "NOERROR" and self.failure in (None, LEGACY_TRUNCATED)


@dataclasses.dataclass(frozen=True, slots=True)
class SiteIdentity:
    nsid: str | None = None
    hostname_bind: str | None = None
    id_server: str | None = None

    @property
    def site(self) -> str | None:
        """The most specific identity string available."""
        return self.nsid or self.hostname_bind or self.id_server


@dataclasses.dataclass(frozen=True, slots=True)
class Integrity:
    outcome: IntegrityOutcome
    reason: str | None = None
    key_tags: tuple[int, ...] = ()
    validated_at: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class Consistency:
    status: ConsistencyStatus = "unknown"
    differs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class RootResult:
    queries: tuple[DnsQuery, ...]
    identity: SiteIdentity
    integrity: Integrity
    consistency: Consistency = Consistency()

    def soa(self, transport: str) -> DnsQuery | None:
        """The ``. SOA`` query of ``transport`` (the first one, if several), or None."""
        for query in self.queries:
            if query.qtype == "SOA" and query.qname == "." and query.transport == transport:
                return query
        return None

    def soa_queries(self) -> dict[str, DnsQuery]:
        """Transport → its ``. SOA`` query (the first of each transport)."""
        out: dict[str, DnsQuery] = {}
        for query in self.queries:
            if query.qtype == "SOA" and query.qname == "." and query.transport not in out:
                out[query.transport] = query
        return out

    @property
    def answered(self) -> bool:
        """Whether any ``. SOA`` query was answered (``DnsQuery.answered``): the one rule."""
        return any(q.answered for q in self.soa_queries().values())

    @property
    def serial(self) -> int | None:
        """The SOA serial of the first ``. SOA`` answer that carried one."""
        return next((q.serial for q in self.soa_queries().values() if q.serial is not None), None)


# --- kind "traceroute" ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class TraceTarget:
    address: str
    family: Family
    name: str | None = None
    protocol: Literal["udp", "icmp", "tcp"] = "udp"
    port: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TraceReply:
    address: str | None = None
    rtt_seconds: float | None = None
    reply_ttl: int | None = None
    icmp_type: int | None = None
    icmp_code: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class TraceHop:
    ttl: int
    replies: tuple[TraceReply, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class TraceResult:
    hops: tuple[TraceHop, ...]
    destination_reached: bool = False
    paris_id: int | None = None
    failure: str | None = None


TargetT = RootTarget | TraceTarget
ResultT = RootResult | TraceResult
KIND_TYPES: dict[str, tuple[type, type]] = {
    "root-dns": (RootTarget, RootResult),
    "traceroute": (TraceTarget, TraceResult),
}


@dataclasses.dataclass(frozen=True, slots=True)
class Record:
    """One measurement. ``id`` (a UUIDv7) makes every upload idempotent."""

    id: str
    kind: Kind
    probe: ProbeRef
    started: dt.datetime
    finished: dt.datetime
    target: TargetT
    result: ResultT
    software: Software = Software(name=SOFTWARE_NAME, version=__version__)
    schema: int = SCHEMA_VERSION
    round: str | None = None
    source: RecordSource | None = None

    @property
    def source_name(self) -> str:
        """``volunteer`` unless the record says it was imported from elsewhere."""
        return self.source.name if self.source is not None else "volunteer"

    @property
    def root(self) -> RootResult | None:
        """The result of a root-dns record, else None (no isinstance at every reader)."""
        return self.result if isinstance(self.result, RootResult) else None

    @property
    def root_target(self) -> RootTarget | None:
        """The target of a root-dns record, else None."""
        return self.target if isinstance(self.target, RootTarget) else None

    def to_json(self) -> dict[str, Any]:
        """Return the wire form (a JSON-ready dict); a schema 1 record keeps its schema 1 form."""
        wire = {
            "schema": self.schema,
            "id": self.id,
            "kind": self.kind,
            "probe": _to_obj(self.probe),
            "started": to_rfc3339(self.started),
            "finished": to_rfc3339(self.finished),
            "target": _to_obj(self.target),
            "result": _to_obj(self.result),
            "software": _to_obj(self.software),
        }
        if self.schema >= 2:
            wire["round"] = self.round
            wire["source"] = _to_obj(self.source)
        return wire

    def dumps(self) -> str:
        """Return the record as one line of compact JSON (the canonical form that is stored)."""
        return dumps_wire(self.to_json())


def dumps_wire(wire: Mapping[str, Any]) -> str:
    """Return a wire form as one line of compact, key-sorted JSON.

    ``dumps_wire(record.to_json()) == record.dumps()``; ``parse_record_wire`` gives the wire
    form of a parsed record without building it again.
    """
    return json.dumps(wire, separators=(",", ":"), sort_keys=True)


def uuid7(now_ns: int | None = None) -> str:
    """Return a new time-ordered UUID (RFC 9562 version 7) as text."""
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def make_record(
    *,
    kind: Kind,
    probe: ProbeRef,
    target: TargetT,
    result: ResultT,
    started: dt.datetime,
    finished: dt.datetime,
    record_id: str | None = None,
    round_id: str | None = None,
    source: RecordSource | None = None,
) -> Record:
    """Build a record of the current schema with a fresh id and this software's version.

    ``round_id`` is the id the measurer shares between the records of one round.
    """
    return Record(
        id=record_id or uuid7(),
        kind=kind,
        probe=probe,
        started=started,
        finished=finished,
        target=target,
        result=result,
        round=round_id,
        source=source,
    )


# --- JSON in ---------------------------------------------------------------------------------


def loads(text: str | bytes) -> Record:
    """Parse one JSON document into a record; raise RecordError with the reason."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"bad JSON: {exc}", code="invalid_value") from None
    return parse_record(obj)


def parse_record(obj: Any) -> Record:
    """Validate a decoded JSON object as a record of any known schema version.

    Raises RecordError whose ``path`` names the offending field and ``reason`` says what is wrong.
    """
    return parse_record_wire(obj)[0]


def parse_record_wire(obj: Any) -> tuple[Record, Mapping[str, Any]]:
    """Parse ``obj`` like ``parse_record``; also return the record's wire form.

    The wire form equals ``record.to_json()``: it is ``obj`` itself (not copied) when ``obj`` is
    already exactly that form, as every record this software writes is, else a fresh
    ``to_json()``. ``dumps_wire`` of it is then the record's canonical JSON without building the
    record's dict again. Raises RecordError like ``parse_record``.
    """
    try:
        return _parse_canonical(obj), obj
    except _NotCanonical:
        pass
    record = _parse_checked(obj)
    return record, record.to_json()


# The fast path. ``_parse_canonical`` accepts only the canonical wire form (what ``to_json``
# writes: every field present, numbers of float fields as JSON floats, timestamps written as
# ``to_rfc3339`` writes them) with converters compiled once per class, and raises _NotCanonical
# on anything else, without saying why. ``_parse_checked`` then walks the value with the
# annotations: it accepts what is valid but not canonical (an omitted default, an integer for a
# float, another UTC offset) and raises the precise RecordError for the rest, so every reason
# and path comes from that one walk.


class _NotCanonical(Exception):
    """Not the canonical wire form: let the checked walk decide, and say why."""


_Convert = Callable[[Any], Any]
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# to_rfc3339's output; strftime writes years before 1000 with fewer digits, so those go the
# checked way.
_CANONICAL_TIME = re.compile(
    r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
    r"\.[0-9]{6}Z"
)
_COMPILED: dict[Any, _Convert] = {}


def _compiled(tp: Any) -> _Convert:
    """The fast converter for the annotated type ``tp`` (built once, then cached)."""
    if tp not in _COMPILED:
        _COMPILED[tp] = _compile(tp)
    return _COMPILED[tp]


def _compile(tp: Any) -> _Convert:
    """Generate the converter for ``tp``: one function with every check inline.

    As ``dataclasses`` generates ``__init__``: a call per field would cost more than the check.
    A dataclass's converter takes a JSON object with exactly its fields (``value[name]`` of a
    missing one raises KeyError; with the size equal, all present means no unknown one either).
    """
    env: dict[str, Any] = {
        "cls": tp,
        "NotCanonical": _NotCanonical,
        "MAX_STRING": MAX_STRING,
        "MAX_ITEMS": MAX_ITEMS,
        "INT_MIN": -(2**63),
        "INT_END": 2**63,
        "INF": math.inf,
    }
    lines = ["def convert(value):"]
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        fields = dataclasses.fields(tp)
        if not all(f.init and not f.kw_only for f in fields):
            raise TypeError(f"unsupported dataclass {tp!r}")  # a programming error
        hints = _hints(tp)
        lines += [
            f"    if type(value) is not dict or len(value) != {len(fields)}:",
            "        raise NotCanonical",
            "    try:",
            *(f"        v{i} = value[{f.name!r}]" for i, f in enumerate(fields)),
            "    except KeyError:",
            "        raise NotCanonical from None",
        ]
        results = []
        for i, f in enumerate(fields):
            test, result = _inline(hints[f.name], f"v{i}", env)
            if test != "True":
                lines += [f"    if not ({test}):", "        raise NotCanonical"]
            results.append(result)
        lines.append(f"    return cls({', '.join(results)})")
    else:
        test, result = _inline(tp, "value", env)
        lines += [f"    if not ({test}):", "        raise NotCanonical", f"    return {result}"]
    exec("\n".join(lines), env)  # the source is built above from the annotations only
    convert: _Convert = env["convert"]
    return convert


def _inline(tp: Any, var: str, env: dict[str, Any]) -> tuple[str, str]:
    """A test that ``var`` holds ``tp`` canonically, and the expression converting it."""
    if tp is str:
        return f"type({var}) is str and len({var}) <= MAX_STRING", var
    if tp is int:
        return f"type({var}) is int and INT_MIN <= {var} < INT_END", var
    if tp is float:
        return f"type({var}) is float and -INF < {var} < INF", var
    if tp is bool:
        return f"type({var}) is bool", var
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        (inner,) = [a for a in args if a is not type(None)]
        if type(None) not in args:
            raise TypeError(f"unsupported annotation {tp!r}")  # a programming error
        test, result = _inline(inner, var, env)
        return (
            f"{var} is None or ({test})",
            var if result == var else f"(None if {var} is None else {result})",
        )
    if origin is Literal:
        allowed = frozenset(typing.get_args(tp))
        if not all(type(a) is str for a in allowed):
            raise TypeError(f"unsupported annotation {tp!r}")  # a programming error
        name = f"allowed{len(env)}"
        env[name] = allowed
        return f"type({var}) is str and {var} in {name}", var
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        name = f"convert{len(env)}"
        env[name] = _compiled(item_tp)
        return (
            f"type({var}) is list and len({var}) <= MAX_ITEMS",
            f"tuple([{name}(item) for item in {var}])",
        )
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        name = f"convert{len(env)}"
        env[name] = _compiled(tp)
        return "True", f"{name}({var})"
    raise TypeError(f"unsupported annotation {tp!r}")  # a programming error


def _canonical_time(value: Any) -> dt.datetime:
    if type(value) is not str or not _CANONICAL_TIME.fullmatch(value):
        raise _NotCanonical
    try:
        return dt.datetime.fromisoformat(value)  # aware, UTC: the text ends in "Z"
    except ValueError:
        raise _NotCanonical from None


_RECORD_FIELDS = frozenset(f.name for f in dataclasses.fields(Record))
_SCHEMA2_FIELDS = frozenset({"round", "source"})
_FIELDS_BY_SCHEMA = {1: _RECORD_FIELDS - _SCHEMA2_FIELDS, 2: _RECORD_FIELDS}


def _parse_canonical(obj: Any) -> Record:
    """The record from its canonical wire form; raise _NotCanonical for anything else."""
    if type(obj) is not dict:
        raise _NotCanonical
    schema = obj.get("schema")
    if type(schema) is not int or obj.keys() != _FIELDS_BY_SCHEMA.get(schema):
        raise _NotCanonical
    kind = obj["kind"]
    record_id = obj["id"]
    round_id = obj.get("round")
    if (
        (round_id is not None and (type(round_id) is not str or not 0 < len(round_id) <= 64))
        or type(kind) is not str
        or kind not in KIND_TYPES
        or type(record_id) is not str
        or not _CANONICAL_UUID.fullmatch(record_id)
    ):
        raise _NotCanonical
    probe = _compiled(ProbeRef)(obj["probe"])
    if (
        not probe.id
        or (probe.country is not None and not _COUNTRY.fullmatch(probe.country))
        or (probe.asn is not None and not 0 <= probe.asn < 2**32)
    ):
        raise _NotCanonical
    started = _canonical_time(obj["started"])
    finished = _canonical_time(obj["finished"])
    if finished < started:
        raise _NotCanonical
    target_cls, result_cls = KIND_TYPES[kind]
    return Record(
        id=record_id,
        kind=typing.cast(Kind, kind),  # checked against KIND_TYPES above
        probe=probe,
        started=started,
        finished=finished,
        target=_compiled(target_cls)(obj["target"]),
        result=_compiled(result_cls)(obj["result"]),
        software=_compiled(Software)(obj["software"]),
        schema=schema,
        round=round_id,
        source=None if obj.get("source") is None else _compiled(RecordSource)(obj["source"]),
    )


# The checked walk: precise reasons, any valid form.


def _parse_checked(obj: Any) -> Record:
    """Validate ``obj`` field by field; raise RecordError at the first offending one."""
    if not isinstance(obj, Mapping):
        raise RecordError(f"expected a JSON object, got {_json_type(obj)}", code="wrong_type")
    schema = obj.get("schema")
    if schema is None:
        raise RecordError("missing field", "schema", code="missing_field")
    if type(schema) is not int:
        raise RecordError(
            f"expected integer, got {_json_type(schema)}", "schema", code="wrong_type"
        )
    if schema not in SCHEMA_VERSIONS:
        raise RecordError(f"unknown schema version {schema}", "schema", code="unknown_schema")
    _check_keys(
        obj,
        required=("id", "kind", "probe", "started", "finished", "target", "result", "software"),
        optional=("schema", "round", "source") if schema >= 2 else ("schema",),
        path="",
    )
    round_id = obj.get("round")
    if round_id is not None:
        if not isinstance(round_id, str):
            raise RecordError(
                f"expected string, got {_json_type(round_id)}", "round", code="wrong_type"
            )
        if not 0 < len(round_id) <= 64:
            raise RecordError("round id must be 1 to 64 characters", "round", code="invalid_value")
    kind = obj["kind"]
    if not isinstance(kind, str):  # also keeps an unhashable value out of the lookup below
        raise RecordError(f"expected string, got {_json_type(kind)}", "kind", code="wrong_type")
    if kind not in KIND_TYPES:
        raise RecordError(f"unknown kind {kind[:40]!r}", "kind", code="unknown_kind")
    record_id = _parse_uuid(obj["id"])
    target_cls, result_cls = KIND_TYPES[kind]
    probe = _from_obj(ProbeRef, obj["probe"], "probe")
    if probe.country is not None and not _COUNTRY.fullmatch(probe.country):
        raise RecordError("expected an ISO 3166-1 alpha-2 code", "probe.country", code="wrong_type")
    if probe.asn is not None and not 0 <= probe.asn < 2**32:
        raise RecordError("ASN out of range", "probe.asn", code="invalid_value")
    if not probe.id:
        raise RecordError("empty probe id", "probe.id", code="invalid_value")
    started = _parse_time(obj["started"], "started")
    finished = _parse_time(obj["finished"], "finished")
    if finished < started:
        raise RecordError("finished before started", "finished", code="invalid_value")
    return Record(
        id=record_id,
        kind=typing.cast(Kind, kind),  # checked against KIND_TYPES above
        probe=probe,
        started=started,
        finished=finished,
        target=_from_obj(target_cls, obj["target"], "target"),
        result=_from_obj(result_cls, obj["result"], "result"),
        software=_from_obj(Software, obj["software"], "software"),
        schema=schema,
        round=round_id,
        source=_from_obj(RecordSource | None, obj.get("source"), "source"),
    )


def _parse_uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise RecordError(f"expected string, got {_json_type(value)}", "id", code="wrong_type")
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        raise RecordError("not a UUID", "id", code="invalid_value") from None
    if str(parsed) != value:
        raise RecordError("UUID not in canonical lower-case form", "id", code="invalid_value")
    return value


def _parse_time(value: Any, path: str) -> dt.datetime:
    if not isinstance(value, str):
        raise RecordError(
            f"expected RFC 3339 string, got {_json_type(value)}", path, code="wrong_type"
        )
    try:
        return parse_rfc3339(value)
    except (ValueError, OverflowError):  # OverflowError: 0001-01-01T00:00:00+01:00
        raise RecordError("not an RFC 3339 UTC timestamp", path, code="invalid_value") from None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _check_keys(
    obj: Mapping[str, Any], *, required: tuple[str, ...], optional: tuple[str, ...], path: str
) -> None:
    prefix = f"{path}." if path else ""
    for key in required:
        if key not in obj:
            raise RecordError("missing field", prefix + key, code="missing_field")
    allowed = set(required) | set(optional)
    for key in obj:
        if key not in allowed:
            raise RecordError("unknown field", prefix + str(key)[:64], code="unknown_field")


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _from_obj(tp: Any, value: Any, path: str) -> Any:
    """Convert decoded JSON into the annotated type ``tp``, raising RecordError at ``path``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise RecordError("must not be null", path, code="wrong_type")
        (inner,) = [a for a in args if a is not type(None)]
        return _from_obj(inner, value, path)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed or isinstance(value, bool):
            shown = str(value)[:40] if isinstance(value, str) else _json_type(value)
            choices = ", ".join(map(str, allowed))
            raise RecordError(f"expected one of {choices}, got {shown!r}", path, code="wrong_type")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, list):
            raise RecordError(f"expected array, got {_json_type(value)}", path, code="wrong_type")
        if len(value) > MAX_ITEMS:
            raise RecordError(
                f"too many items ({len(value)} > {MAX_ITEMS})", path, code="invalid_value"
            )
        return tuple(_from_obj(item_tp, v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise RecordError(f"expected object, got {_json_type(value)}", path, code="wrong_type")
        fields = dataclasses.fields(tp)
        required = tuple(
            f.name
            for f in fields
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        )
        optional = tuple(f.name for f in fields if f.name not in required)
        _check_keys(value, required=required, optional=optional, path=path)
        hints = _hints(tp)
        kwargs = {
            f.name: _from_obj(hints[f.name], value[f.name], f"{path}.{f.name}")
            for f in fields
            if f.name in value
        }
        return tp(**kwargs)
    if tp is bool:
        if not isinstance(value, bool):
            raise RecordError(f"expected boolean, got {_json_type(value)}", path, code="wrong_type")
        return value
    if tp is int:
        if type(value) is not int:
            raise RecordError(f"expected integer, got {_json_type(value)}", path, code="wrong_type")
        if not -(2**63) <= value < 2**63:
            raise RecordError("integer out of range", path, code="invalid_value")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RecordError(f"expected number, got {_json_type(value)}", path, code="wrong_type")
        if isinstance(value, int) and abs(value) > 2**53:
            raise RecordError("number out of range", path, code="invalid_value")
        if not math.isfinite(value):
            raise RecordError("number not finite", path, code="invalid_value")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise RecordError(f"expected string, got {_json_type(value)}", path, code="wrong_type")
        if len(value) > MAX_STRING:
            raise RecordError(
                f"string too long ({len(value)} > {MAX_STRING})", path, code="invalid_value"
            )
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a programming error


# --- JSON out --------------------------------------------------------------------------------


def _to_obj(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_obj(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_to_obj(v) for v in value]
    if isinstance(value, dt.datetime):
        return to_rfc3339(value)
    return value
