"""The root-server measurer: one round queries every root address over UDP and TCP.

Per target address (concurrently, bounded): ``. SOA`` over UDP and over TCP with EDNS NSID and DO;
``hostname.bind`` and ``id.server`` CH TXT over UDP; ``. DNSKEY`` with DO over UDP, again over TCP
when truncated. Then, once every address's queries are done (so that their answers do not
delay the RTT readings), for RSSAC047 correctness (``probes.correctness``: the same questions
for every letter of a round) ``. NS``, a TLD's NS and a TLD's DS, and in about a tenth of the
rounds ``www.rssac047-test.<random>. A``, all with DO over UDP, again over TCP when truncated.
No retries otherwise. What the network does is data in the record; nothing here raises for
a timeout, a refusal or a bogus signature.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Sequence

import dns.asyncbackend
import dns.asyncquery
import dns.edns
import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
from publiccore.probes import correctness, dnssec
from publiccore.probes.failure import classify

from publiccore.clock import Clock, utc_now
from publiccore.config import RootSettings
from publiccore.errors import ConfigError
from publiccore.records import (
    Consistency,
    ConsistencyStatus,
    DnsQuery,
    ProbeRef,
    Record,
    RootResult,
    RootTarget,
    SiteIdentity,
    Transport,
    make_record,
    uuid7,
)


@dataclasses.dataclass(frozen=True, slots=True)
class RootConfig:
    """How a round is run. ``validation_time`` fixes the DNSSEC clock (None: the probe's clock)."""

    anchors: tuple[dnssec.TrustAnchor, ...]
    timeout_seconds: float = 4.0
    concurrency: int = 64
    udp_payload_bytes: int = 1232
    validation_time: dt.datetime | None = None
    negative_share: float = 0.1  # share of rounds with the expected-negative question

    def __post_init__(self) -> None:
        if not self.timeout_seconds > 0:
            raise ValueError("timeout must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if not 0.0 <= self.negative_share <= 1.0:
            raise ValueError("negative_query_share must be within [0, 1]")

    @classmethod
    def from_settings(
        cls,
        settings: RootSettings,
        *,
        anchors: str | None = None,
        timeout_seconds: float | None = None,
        concurrency: int | None = None,
        validation_time: dt.datetime | None = None,
    ) -> RootConfig:
        """The round ``[root]`` describes, with a command's overrides (None: the setting).

        Loads the trust anchors (``anchors``, else ``settings.anchors``, else the bundled ones).
        Raises InputError for unreadable anchors and ConfigError for a bad setting.
        """
        loaded = dnssec.load_anchors(anchors or settings.anchors or None)
        try:
            return cls(
                anchors=tuple(loaded),
                timeout_seconds=timeout_seconds or settings.timeout_seconds,
                concurrency=concurrency or settings.concurrency,
                udp_payload_bytes=settings.udp_payload_bytes,
                validation_time=validation_time,
                negative_share=settings.negative_query_share,
            )
        except ValueError as exc:
            raise ConfigError(f"[root]: {exc}") from None


@dataclasses.dataclass(frozen=True, slots=True)
class _Exchange:
    query: DnsQuery
    message: dns.message.Message | None


def _make_query(
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    rdclass: dns.rdataclass.RdataClass,
    cfg: RootConfig,
    *,
    dnssec_ok: bool,
) -> dns.message.QueryMessage:
    return dns.message.make_query(
        qname,
        rdtype,
        rdclass,
        use_edns=0,
        want_dnssec=dnssec_ok,
        payload=cfg.udp_payload_bytes,
        options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")],
    )


def _nsid(message: dns.message.Message) -> bytes | None:
    for option in message.options:
        if option.otype == dns.edns.OptionType.NSID:
            return option.to_wire() if not hasattr(option, "nsid") else option.nsid
    return None


def _printable(raw: bytes) -> str | None:
    text = raw.decode("ascii", "replace")
    return text if text.isprintable() else None


def _serial(message: dns.message.Message) -> int | None:
    for rrset in message.answer:
        if rrset.name == dns.name.root and rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


async def _send(
    query: dns.message.Message, address: str, transport: str, seconds: float
) -> tuple[dns.message.Message, float]:
    """Send one query, no retry; return the response and its RTT in seconds.

    UDP RTT runs from the moment the datagram is sent to the full response; TCP RTT from the
    start of the connection (handshake included), as RSSAC047 measures them. The socket is made
    before the clock starts, so concurrent queries' set-up does not inflate each other's RTT.
    """
    backend = dns.asyncbackend.get_default_backend()
    family = dns.inet.af_for_address(address)
    destination = dns.inet.low_level_address_tuple((address, 53), family)
    expiration = time.time() + seconds
    if transport == "udp":
        async with await backend.make_socket(family, socket.SOCK_DGRAM) as sock:
            _, sent = await dns.asyncquery.send_udp(sock, query, destination, expiration)
            response, received, _ = await dns.asyncquery.receive_udp(
                sock,
                destination,
                expiration,
                ignore_unexpected=True,
                ignore_errors=True,
                query=query,
            )
        return response, received - sent
    begin = time.time()
    async with await backend.make_socket(
        family, socket.SOCK_STREAM, 0, None, destination, seconds
    ) as stream:
        await dns.asyncquery.send_tcp(stream, query, expiration)
        response, received = await dns.asyncquery.receive_tcp(stream, expiration)
    if not query.is_response(response):
        raise dns.query.BadResponse
    return response, received - begin


async def _exchange(
    target: RootTarget,
    qname: str,
    rdtype: dns.rdatatype.RdataType,
    rdclass: dns.rdataclass.RdataClass,
    transport: Transport,
    cfg: RootConfig,
    *,
    dnssec_ok: bool = True,
) -> _Exchange:
    query = _make_query(qname, rdtype, rdclass, cfg, dnssec_ok=dnssec_ok)
    base = DnsQuery(
        qname=qname,
        qclass=dns.rdataclass.to_text(rdclass),
        qtype=dns.rdatatype.to_text(rdtype),
        transport=transport,
    )
    try:
        response, rtt = await _send(query, target.address, transport, cfg.timeout_seconds)
    except asyncio.CancelledError:
        raise
    except (OSError, EOFError, dns.exception.DNSException) as exc:
        failed = dataclasses.replace(base, failure=classify(exc, transport=transport))
        return _Exchange(failed, None)
    wire = getattr(response, "wire", None) or response.to_wire()
    nsid = _nsid(response)
    truncated = bool(response.flags & dns.flags.TC)
    return _Exchange(
        dataclasses.replace(
            base,
            rcode=dns.rcode.to_text(response.rcode()),
            aa=bool(response.flags & dns.flags.AA),
            tc=truncated,
            rtt_seconds=round(rtt, 6),
            serial=_serial(response) if rdtype == dns.rdatatype.SOA else None,
            nsid_hex=nsid.hex() if nsid is not None else None,
            nsid_text=_printable(nsid) if nsid is not None else None,
            size_bytes=len(wire),
            wire_b64=base64.b64encode(wire).decode("ascii"),
        ),
        response,
    )


def _txt(exchange: _Exchange) -> str | None:
    if exchange.message is None or exchange.message.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in exchange.message.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return "".join(s.decode("ascii", "replace") for s in rrset[0].strings)
    return None


def _answered(exchange: _Exchange | None) -> dns.message.Message | None:
    if exchange is None or exchange.message is None or exchange.query.tc:
        return None
    return exchange.message if exchange.message.rcode() == dns.rcode.NOERROR else None


@dataclasses.dataclass(frozen=True, slots=True)
class _Observed:
    """Everything one target answered, before any (CPU-bound) validation."""

    target: RootTarget
    started: dt.datetime
    finished: dt.datetime
    soa_udp: _Exchange
    soa_tcp: _Exchange
    hostname: _Exchange
    id_server: _Exchange
    dnskey: _Exchange
    exchanges: tuple[_Exchange, ...]


def _correctness_questions(
    plan: correctness.CorrectnessPlan,
) -> list[tuple[str, dns.rdatatype.RdataType]]:
    """The correctness questions beyond ``. SOA`` and ``. DNSKEY`` (RSSAC047 §5.3)."""
    questions = [
        (".", dns.rdatatype.NS),
        (plan.ns_tld, dns.rdatatype.NS),
        (plan.ds_tld, dns.rdatatype.DS),
    ]
    if plan.negative_qname is not None:
        questions.append((plan.negative_qname, dns.rdatatype.A))
    return questions


async def _observe(target: RootTarget, cfg: RootConfig, clock: Clock) -> _Observed:
    """The latency-measured queries of one target (and the CH TXT and DNSKEY ones)."""
    started = clock()
    IN, CH = dns.rdataclass.IN, dns.rdataclass.CH
    soa_udp, soa_tcp, hostname, id_server, dnskey_udp = await asyncio.gather(
        _exchange(target, ".", dns.rdatatype.SOA, IN, "udp", cfg),
        _exchange(target, ".", dns.rdatatype.SOA, IN, "tcp", cfg),
        _exchange(target, "hostname.bind.", dns.rdatatype.TXT, CH, "udp", cfg, dnssec_ok=False),
        _exchange(target, "id.server.", dns.rdatatype.TXT, CH, "udp", cfg, dnssec_ok=False),
        _exchange(target, ".", dns.rdatatype.DNSKEY, IN, "udp", cfg),
    )
    exchanges = [soa_udp, soa_tcp, hostname, id_server, dnskey_udp]
    dnskey = dnskey_udp
    if dnskey_udp.query.tc:
        dnskey = await _exchange(target, ".", dns.rdatatype.DNSKEY, IN, "tcp", cfg)
        exchanges.append(dnskey)
    return _Observed(
        target=target,
        started=started,
        finished=clock(),
        soa_udp=soa_udp,
        soa_tcp=soa_tcp,
        hostname=hostname,
        id_server=id_server,
        dnskey=dnskey,
        exchanges=tuple(exchanges),
    )


async def _ask_correctness(
    seen: _Observed, cfg: RootConfig, clock: Clock, plan: correctness.CorrectnessPlan
) -> _Observed:
    """Add the correctness questions' exchanges to what a target answered (UDP, then TCP for
    the truncated ones, RSSAC047 [hjw])."""
    IN = dns.rdataclass.IN
    target = seen.target
    questions = _correctness_questions(plan)
    asked = await asyncio.gather(
        *(_exchange(target, qname, rdtype, IN, "udp", cfg) for qname, rdtype in questions)
    )
    retried = await asyncio.gather(
        *(
            _exchange(target, qname, rdtype, IN, "tcp", cfg)
            for (qname, rdtype), e in zip(questions, asked, strict=True)
            if e.query.tc
        )
    )
    return dataclasses.replace(
        seen, finished=clock(), exchanges=(*seen.exchanges, *asked, *retried)
    )


def _to_record(
    seen: _Observed,
    cfg: RootConfig,
    *,
    probe: ProbeRef,
    clock: Clock,
    round_id: str | None = None,
) -> Record:
    soa_message = _answered(seen.soa_udp) or _answered(seen.soa_tcp)
    nsid = next(
        (
            q.query.nsid_text or q.query.nsid_hex
            for q in (seen.soa_udp, seen.soa_tcp)
            if q.query.nsid_hex
        ),
        None,
    )
    integrity = dnssec.validate_root(
        _answered(seen.dnskey), soa_message, cfg.anchors, cfg.validation_time or clock()
    )
    result = RootResult(
        queries=tuple(e.query for e in seen.exchanges),
        identity=SiteIdentity(
            nsid=nsid, hostname_bind=_txt(seen.hostname), id_server=_txt(seen.id_server)
        ),
        integrity=integrity,
        consistency=Consistency(),
    )
    return make_record(
        kind="root-dns",
        probe=probe,
        target=seen.target,
        result=result,
        started=seen.started,
        finished=seen.finished,
        round_id=round_id,
    )


async def measure_root(
    target: RootTarget, cfg: RootConfig, *, probe: ProbeRef, clock: Clock = utc_now
) -> Record:
    """Measure one root server address and return its ``root-dns`` record."""
    plan = correctness.plan(uuid7(), negative_share=cfg.negative_share)
    seen = await _ask_correctness(await _observe(target, cfg, clock), cfg, clock, plan)
    return _to_record(seen, cfg, probe=probe, clock=clock)


def _dnskey_tags(record: Record) -> str | None:
    """The DNSKEY set a record saw, as its sorted key tags (enough to tell sets apart)."""
    assert isinstance(record.result, RootResult)
    tags = record.result.integrity.key_tags
    return ",".join(map(str, tags)) if tags else None


def _record_serial(record: Record) -> int | None:
    assert record.root is not None
    return record.root.serial


def _majority(per_letter: dict[str, collections.Counter[object]]) -> object | None:
    """The value most letters agree on (each letter votes once, with its own most common value)."""
    votes = collections.Counter(c.most_common(1)[0][0] for c in per_letter.values() if c)
    if not votes:
        return None
    ranked = votes.most_common(2)
    if len(ranked) == 2 and ranked[0][1] == ranked[1][1]:
        return None  # no majority: a tie says nothing about who is odd
    return ranked[0][0]


def mark_consistency(records: Sequence[Record]) -> list[Record]:
    """Compare every record's SOA serial and DNSKEY set with the majority of letters."""
    checks = {"serial": _record_serial, "dnskey": _dnskey_tags}
    majorities: dict[str, object | None] = {}
    for name, read in checks.items():
        per_letter: dict[str, collections.Counter[object]] = collections.defaultdict(
            collections.Counter
        )
        for record in records:
            assert isinstance(record.target, RootTarget)
            value = read(record)
            if value is not None:
                per_letter[record.target.letter][value] += 1
        majorities[name] = _majority(per_letter)
    out = []
    for record in records:
        assert isinstance(record.result, RootResult)
        differs: list[str] = []
        seen = False
        for name, read in checks.items():
            value = read(record)
            if value is None or majorities[name] is None:
                continue
            seen = True
            if value != majorities[name]:
                differs.append(f"{name} {value} (majority {majorities[name]})")
        status: ConsistencyStatus = (
            "inconsistent" if differs else ("consistent" if seen else "unknown")
        )
        consistency = Consistency(status=status, differs=tuple(differs))
        result = dataclasses.replace(record.result, consistency=consistency)
        out.append(dataclasses.replace(record, result=result))
    return out


async def run_round(
    targets: Sequence[RootTarget], cfg: RootConfig, *, probe: ProbeRef, clock: Clock = utc_now
) -> list[Record]:
    """Measure every target concurrently (at most ``cfg.concurrency`` at once); one record each.

    Every record of the round carries the same fresh round id (a UUIDv7); the round's
    correctness questions are chosen from it (``correctness.plan``).
    """
    round_id = uuid7()
    plan = correctness.plan(round_id, negative_share=cfg.negative_share)
    gate = asyncio.Semaphore(cfg.concurrency)

    async def one(target: RootTarget) -> _Observed:
        async with gate:
            return await _observe(target, cfg, clock)

    async def two(seen: _Observed) -> _Observed:
        async with gate:
            return await _ask_correctness(seen, cfg, clock, plan)

    # Network first, validation after: CPU-bound DNSSEC work on the event loop would delay the
    # wake-up of queries still in flight and inflate their RTT. For the same reason the
    # correctness questions (larger answers) go out only once every latency-measured query of
    # the round is done: at most one more timeout (and one TCP retry) per round.
    observed = await asyncio.gather(*(one(t) for t in targets))
    observed = await asyncio.gather(*(two(seen) for seen in observed))
    return mark_consistency(
        [_to_record(seen, cfg, probe=probe, clock=clock, round_id=round_id) for seen in observed]
    )
