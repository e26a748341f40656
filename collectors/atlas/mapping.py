"""One RIPE Atlas result → one publiccore record of the existing classes, or a counted skip.

DNS results whose destination is a root server address by the hints in force at the result's
time become ``root-dns`` records (``RootTarget``/``RootResult``, as ``probes/root.py`` builds
them); traceroutes become ``traceroute`` records (``TraceTarget``/``TraceResult``). Results are
parsed with ripe-atlas-sagan (the RIPE NCC's parser); every ``abuf`` is decoded with dnspython.

What the network did (a timeout, an answer that is not DNS) is data in the record. A result that
is not a readable Atlas result raises ``MalformedResult``; one that publiccore does not measure
is returned as ``Skip`` with a reason from ``SKIP_REASONS``. The ``from`` address of a result is
never read into a record.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import functools
import ipaddress
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import dns.edns
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from publiccore.collectors.atlas.probemeta import ProbeInfo
from publiccore.probes import dnssec
from publiccore.probes.failure import Failure
from ripe.atlas.sagan import Result, ResultParseError
from ripe.atlas.sagan.base import ParsingDict
from ripe.atlas.sagan.traceroute import TracerouteResult

from publiccore.records import (
    DnsQuery,
    Family,
    Integrity,
    ProbeRef,
    Record,
    RecordSource,
    RootResult,
    RootTarget,
    SiteIdentity,
    TraceHop,
    TraceReply,
    TraceResult,
    TraceTarget,
    Transport,
    make_record,
)
from publiccore.roothints import HintsHistory

SOURCE_NAME = "ripe-atlas"
# Record ids are uuid5 in this namespace over "msm/prb/timestamp/destination": the same result
# always gets the same id, so importing it again stores nothing new.
ID_NAMESPACE = uuid.UUID("5d0c1a7e-8a35-5b43-9a51-7c6f0e4d2a11")

SkipReason = Literal["unsupported_type", "not_root", "no_destination", "unknown_query"]
SKIP_REASONS: tuple[str, ...] = ("unsupported_type", "not_root", "no_destination", "unknown_query")

_IGNORE = {"on_error": ParsingDict.ACTION_IGNORE, "on_malformation": ParsingDict.ACTION_IGNORE}
_ROOT_SOA = (dns.name.root, dns.rdatatype.SOA)


class MalformedResult(Exception):
    """The value is not a readable RIPE Atlas result; ``str()`` says why."""


@dataclasses.dataclass(frozen=True, slots=True)
class Skip:
    """A readable result publiccore does not turn into a record, and why."""

    reason: SkipReason
    detail: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class Question:
    """What a DNS measurement asked, when the answer does not say (a timeout)."""

    qname: str
    qclass: str
    qtype: str


def question_of_definition(definition: Mapping[str, Any]) -> Question | None:
    """The question of an Atlas DNS measurement definition (API v1 or v2 shape), or None."""
    query = definition.get("query")
    if isinstance(query, Mapping):
        name, qtype, qclass = query.get("value"), query.get("type"), query.get("class")
    else:
        name = definition.get("query_argument")
        qtype, qclass = definition.get("query_type"), definition.get("query_class")
    if not all(isinstance(v, str) and v for v in (name, qtype, qclass)):
        return None
    assert isinstance(name, str) and isinstance(qtype, str) and isinstance(qclass, str)
    qclass = "CH" if qclass.upper() in ("CHAOS", "CH") else qclass.upper()
    return Question(qname=name if name.endswith(".") else name + ".", qclass=qclass, qtype=qtype)


@dataclasses.dataclass(frozen=True, slots=True)
class Mapper:
    """Turns Atlas results into records with one hints history, probe table and anchor set.

    ``questions`` gives, per measurement id, what it asked (from its definition), for results
    whose answer does not say. DNSSEC validation runs at each result's own time, so an archived
    DNSKEY answer is judged by the signatures valid when it was received.
    """

    hints: HintsHistory
    probes: Mapping[int, ProbeInfo]
    anchors: Sequence[dnssec.TrustAnchor]
    questions: Mapping[int, Question] = dataclasses.field(default_factory=dict)

    def map(self, obj: Any, *, source: RecordSource) -> Record | Skip:
        """Map one decoded result; raise MalformedResult for what is not an Atlas result."""
        if not isinstance(obj, dict):
            raise MalformedResult("not a JSON object")
        kind = obj.get("type")
        if isinstance(kind, str) and kind.lower() not in ("dns", "traceroute"):
            return Skip("unsupported_type", kind[:20])
        try:
            parsed = Result.get(obj, parse_buf=False, **_IGNORE)
        except ResultParseError as exc:
            raise MalformedResult(str(exc)[:200]) from None
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
            raise MalformedResult(f"unreadable result: {type(exc).__name__}") from None
        _check_ids(obj)
        if isinstance(parsed, TracerouteResult):
            return self._traceroute(obj, parsed, source)
        return self._dns(obj, parsed, source)

    # --- probe ------------------------------------------------------------------------------

    def probe_ref(self, prb_id: int, family: Family) -> ProbeRef:
        """``atlas-<prb_id>`` with the probe's registered country and the family's ASN."""
        info = self.probes.get(prb_id)
        if info is None:
            return ProbeRef(id=f"atlas-{prb_id}")
        return ProbeRef(id=f"atlas-{prb_id}", asn=info.asn(family), country=info.country)

    # --- DNS --------------------------------------------------------------------------------

    def _dns(self, obj: dict[str, Any], parsed: Any, source: RecordSource) -> Record | Skip:
        started = _time(obj["timestamp"])
        # sagan's responses (a single result or a result set, alike); an error has none.
        responses = [
            r.raw_data for r in getattr(parsed, "responses", ()) if isinstance(r.raw_data, dict)
        ]
        responses = responses or _responses(obj)
        if not responses:
            return Skip("no_destination", "no result, no resultset")
        by_destination: dict[str, list[dict[str, Any]]] = {}
        for response in responses:
            address = response.get("dst_addr", obj.get("dst_addr"))
            if not isinstance(address, str):
                continue
            by_destination.setdefault(address, []).append(response)
        if not by_destination:
            return Skip("no_destination", str(obj.get("error", ""))[:60])
        # One record per result: the first root destination (a built-in measurement has one).
        for address, group in by_destination.items():
            target = self.hints.target_at(address, started)
            if target is not None:
                return self._root_record(obj, target, group, started, source)
        return Skip("not_root", next(iter(by_destination)))

    def _root_record(
        self,
        obj: dict[str, Any],
        target: RootTarget,
        responses: list[dict[str, Any]],
        started: dt.datetime,
        source: RecordSource,
    ) -> Record | Skip:
        exchanges = [self._exchange(obj, r) for r in responses]
        if any(e is None for e in exchanges):
            return Skip("unknown_query", "no abuf, qbuf or measurement definition")
        done = [e for e in exchanges if e is not None]
        queries = tuple(e[0] for e in done)
        identity = _identity(done)
        integrity = self._integrity(done, started)
        rtts = [q.rtt_seconds for q in queries if q.rtt_seconds is not None]
        finished = started + dt.timedelta(seconds=max(rtts, default=0.0))
        return make_record(
            kind="root-dns",
            probe=self.probe_ref(obj["prb_id"], target.family),
            target=target,
            result=RootResult(queries=queries, identity=identity, integrity=integrity),
            started=started,
            finished=finished,
            record_id=record_id(obj, target.address),
            source=source,
        )

    def _exchange(
        self, obj: dict[str, Any], response: dict[str, Any]
    ) -> tuple[DnsQuery, dns.message.Message | None] | None:
        inner = response.get("result") if isinstance(response.get("result"), dict) else response
        assert isinstance(inner, dict)
        transport = _transport(response.get("proto", obj.get("proto")))
        abuf = inner.get("abuf")
        question = self._question(obj, inner, response)
        error = response.get("error", obj.get("error") if response is obj else None)
        if abuf is None:
            if question is None:
                return None
            failure = _error_code(error) if error is not None else Failure.UNKNOWN_FAILURE.value
            return _query(question, transport, failure=failure), None
        if not isinstance(abuf, str):
            raise MalformedResult("abuf is not a string")
        try:
            wire = base64.b64decode(abuf, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedResult("abuf is not base64") from None
        rtt = _rtt(inner.get("rt"))
        try:
            message = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError, IndexError):
            if question is None:
                return None
            query = _query(question, transport, failure=Failure.DNS_MALFORMED.value)
            return dataclasses.replace(
                query,
                rtt_seconds=rtt,
                size_bytes=len(wire),
                wire_b64=base64.b64encode(wire).decode("ascii"),
            ), None
        if message.question:
            q = message.question[0]
            question = Question(
                qname=q.name.to_text(),
                qclass=dns.rdataclass.to_text(q.rdclass),
                qtype=dns.rdatatype.to_text(q.rdtype),
            )
        if question is None:
            return None
        truncated = bool(message.flags & dns.flags.TC)
        nsid = _nsid(message)
        return DnsQuery(
            qname=question.qname,
            qclass=question.qclass,
            qtype=question.qtype,
            transport=transport,
            rcode=dns.rcode.to_text(message.rcode()),
            aa=bool(message.flags & dns.flags.AA),
            tc=truncated,
            rtt_seconds=rtt,
            serial=_serial(message) if question.qtype == "SOA" else None,
            nsid_hex=nsid.hex() if nsid is not None else None,
            nsid_text=_printable(nsid) if nsid is not None else None,
            size_bytes=len(wire),
            wire_b64=base64.b64encode(wire).decode("ascii"),
            failure=None,  # truncation is the tc flag (schema 2), as the probe writes it
        ), message

    def _question(
        self, obj: dict[str, Any], inner: dict[str, Any], response: dict[str, Any]
    ) -> Question | None:
        qbuf = inner.get("qbuf", response.get("qbuf", obj.get("qbuf")))
        if isinstance(qbuf, str):
            try:
                asked = dns.message.from_wire(base64.b64decode(qbuf, validate=True))
            except (dns.exception.DNSException, binascii.Error, ValueError, IndexError):
                asked = None
            if asked is not None and asked.question:
                q = asked.question[0]
                return Question(
                    qname=q.name.to_text(),
                    qclass=dns.rdataclass.to_text(q.rdclass),
                    qtype=dns.rdatatype.to_text(q.rdtype),
                )
        return self.questions.get(obj["msm_id"])

    def _integrity(
        self, exchanges: list[tuple[DnsQuery, dns.message.Message | None]], when: dt.datetime
    ) -> Integrity:
        """As the probe computes it when the measurement asked ``. DNSKEY``; else not_measured."""
        dnskey = [(q, m) for q, m in exchanges if q.qtype == "DNSKEY" and q.qname == "."]
        if not dnskey:
            return Integrity(outcome="not_measured")
        key_message = next((m for q, m in dnskey if _answered(q, m)), None)
        soa_message = next(
            (m for q, m in exchanges if q.qtype == "SOA" and q.qname == "." and _answered(q, m)),
            None,
        )
        return dnssec.validate_root(key_message, soa_message, self.anchors, when)

    # --- traceroute -------------------------------------------------------------------------

    def _traceroute(
        self, obj: dict[str, Any], parsed: TracerouteResult, source: RecordSource
    ) -> Record | Skip:
        address = obj.get("dst_addr")
        if not isinstance(address, str):
            return Skip("no_destination", str(obj.get("dst_name", ""))[:60])
        try:
            destination = ipaddress.ip_address(address)
        except ValueError:
            raise MalformedResult(f"dst_addr {address[:60]!r} is not an address") from None
        family: Family = "ipv4" if destination.version == 4 else "ipv6"
        protocol = str(obj.get("proto", "")).lower()
        if protocol not in ("udp", "icmp", "tcp"):
            raise MalformedResult(f"unknown traceroute protocol {protocol[:20]!r}")
        hops = []
        for hop in obj.get("result") or ():
            if not isinstance(hop, dict) or type(hop.get("hop")) is not int:
                raise MalformedResult("traceroute hop without a hop number")
            if not 1 <= hop["hop"] <= 255:
                raise MalformedResult(f"hop number {hop['hop']} out of range")
            replies = tuple(
                _reply(packet, destination.version)
                for packet in hop.get("result") or ()
                if isinstance(packet, dict) and not packet.get("dup")
            )
            hops.append(TraceHop(ttl=hop["hop"], replies=replies))
        answered = any(r.address for h in hops for r in h.replies)
        failure = None
        if not answered:
            failure = (Failure.UNKNOWN_FAILURE if "error" in obj else Failure.NO_REPLY).value
        started = _time(obj["timestamp"])
        end = obj.get("endtime")
        finished = _time(end) if isinstance(end, int | float) and end >= obj["timestamp"] else None
        paris = obj.get("paris_id")
        target = TraceTarget(
            address=str(destination),
            family=family,
            name=obj["dst_name"] if isinstance(obj.get("dst_name"), str) else None,
            protocol=protocol,  # type: ignore[arg-type]  # checked above
            port=None,
        )
        return make_record(
            kind="traceroute",
            probe=self.probe_ref(obj["prb_id"], family),
            target=target,
            result=TraceResult(
                hops=tuple(hops),
                destination_reached=bool(parsed.destination_ip_responded),
                paris_id=paris if type(paris) is int else None,
                failure=failure,
            ),
            started=started,
            finished=finished or started,
            record_id=record_id(obj, str(destination)),
            source=source,
        )


# --- helpers ----------------------------------------------------------------------------------


def record_id(obj: Mapping[str, Any], destination: str) -> str:
    """The deterministic record id of one result towards ``destination``."""
    key = f"{obj['msm_id']}/{obj['prb_id']}/{obj['timestamp']}/{destination}"
    return str(uuid.uuid5(ID_NAMESPACE, key))


def _check_ids(obj: dict[str, Any]) -> None:
    for key in ("msm_id", "prb_id"):
        value = obj.get(key)
        if type(value) is not int or not 0 < value < 2**63:
            raise MalformedResult(f"{key} is not a positive integer")
    stamp = obj.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int | float) or not 0 < stamp < 2**33:
        raise MalformedResult("timestamp is not a POSIX time")


def _time(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)


def _responses(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Single result (``result``), result set (``resultset``) or an error with no answer."""
    if isinstance(obj.get("resultset"), list):
        return [r for r in obj["resultset"] if isinstance(r, dict)]
    if isinstance(obj.get("result"), dict) or "error" in obj:
        return [obj]
    return []


def _transport(value: Any) -> Transport:
    text = str(value or "UDP").upper()
    if text in ("UDP", "U"):
        return "udp"
    if text in ("TCP", "T"):
        return "tcp"
    raise MalformedResult(f"unknown DNS transport {text[:20]!r}")


def _rtt(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e7:
        return None
    return round(value / 1000.0, 6)


def _error_code(error: Any) -> str:
    """Atlas ``error`` → the probe's failure codes (``timeout`` is the only one Atlas names)."""
    if isinstance(error, Mapping) and "timeout" in error:
        return Failure.DNS_TIMEOUT.value
    return Failure.UNKNOWN_FAILURE.value


def _query(question: Question, transport: Transport, *, failure: str) -> DnsQuery:
    return DnsQuery(
        qname=question.qname,
        qclass=question.qclass,
        qtype=question.qtype,
        transport=transport,
        failure=failure,
    )


def _nsid(message: dns.message.Message) -> bytes | None:
    for option in message.options:
        if option.otype == dns.edns.OptionType.NSID:
            return bytes(option.nsid) if hasattr(option, "nsid") else option.to_wire()
    return None


def _printable(raw: bytes) -> str | None:
    text = raw.decode("ascii", "replace")
    return text if text.isprintable() else None


def _serial(message: dns.message.Message) -> int | None:
    for rrset in message.answer:
        if rrset.name == dns.name.root and rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def _answered(query: DnsQuery, message: dns.message.Message | None) -> bool:
    return message is not None and not query.tc and query.rcode == "NOERROR"


def _txt(message: dns.message.Message | None) -> str | None:
    if message is None or message.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in message.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return "".join(s.decode("ascii", "replace") for s in rrset[0].strings)
    return None


def _identity(exchanges: list[tuple[DnsQuery, dns.message.Message | None]]) -> SiteIdentity:
    """NSID (of an SOA answer first, else any), hostname.bind and id.server TXT answers."""
    ranked = sorted(exchanges, key=lambda e: e[0].qtype != "SOA")
    nsid = next((q.nsid_text or q.nsid_hex for q, _ in ranked if q.nsid_hex), None)
    names: dict[str, str | None] = {"hostname.bind.": None, "id.server.": None}
    for query, message in exchanges:
        name = query.qname.lower()
        if query.qclass == "CH" and query.qtype == "TXT" and name in names and not names[name]:
            names[name] = _txt(message)
    return SiteIdentity(
        nsid=nsid, hostname_bind=names["hostname.bind."], id_server=names["id.server."]
    )


_UNREACHABLE_V4 = {"N": 0, "H": 1, "P": 2, "p": 3, "A": 13}
_UNREACHABLE_V6 = {"N": 0, "A": 1, "h": 2, "H": 3, "p": 4}


@functools.lru_cache(maxsize=65536)
def _address(text: str) -> str:
    """The canonical text of an address (cached: hops repeat); raise MalformedResult."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise MalformedResult(f"hop reply from {text[:60]!r} is not an address") from None


def _reply(packet: Mapping[str, Any], version: int) -> TraceReply:
    """One Atlas traceroute packet → TraceReply; ``x: "*"`` (no reply) → an empty one.

    Atlas names the ICMP type only for destination-unreachable replies (``err``: a letter or the
    code); otherwise the type is left empty rather than guessed.
    """
    origin = packet.get("from")
    if not isinstance(origin, str):
        return TraceReply()
    address = _address(origin)
    ttl = packet.get("ttl")
    err = packet.get("err")
    icmp_type = icmp_code = None
    if err is not None:
        icmp_type = 3 if version == 4 else 1
        table = _UNREACHABLE_V4 if version == 4 else _UNREACHABLE_V6
        icmp_code = err if type(err) is int else table.get(str(err))
    return TraceReply(
        address=address,
        rtt_seconds=_rtt(packet.get("rtt")),
        reply_ttl=ttl if type(ttl) is int and 0 <= ttl <= 255 else None,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
    )
