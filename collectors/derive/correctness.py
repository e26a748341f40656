"""RSSAC047 §5.3 correctness: judge root answers against the root zones of the preceding 48 h.

Definition M-root-correctness (docs/methodology.md). A record's correctness answers are its
DNSSEC-OK answers (the EDNS DO bit echoed) with RCODE NOERROR or NXDOMAIN, not truncated, to
``. SOA``, ``. DNSKEY``, ``. NS``, ``<TLD> NS``, ``<TLD> DS`` and ``www.rssac047-test.<random>.
A`` (``probes.correctness``). One is **correct** when, for one root zone of the window (the
zones whose serial some letter answered with in the 48 hours before the record, or that the
collector stored in those hours), all of:

- every RRset of the Answer, Authority and Additional sections but RRSIGs (and OPT) equals the
  zone's RRset of that name and type (RSSAC047 [vnk]; TTLs are not compared);
- every RRSIG set validates its RRset with the zone's DNSKEY set, itself signed by a key of a
  trust anchor valid then (the bundled IANA ``root-anchors.xml``), at the record's validation
  time (its ``integrity.validated_at``, else its start; [yds]);
- the rules of its kind hold (RSSAC047 [owf] [amj] [djd] [hmk] [dru] [vcu]): AA set (a TLD
  referral: AA clear), the RRsets that must be present and signed are, the sections that must
  be empty are; a negative answer has the signed root SOA, a signed NSEC covering the name
  and the signed root NSEC proving no wildcard.

The kind is what came back, not what was asked ([lbl]): an NXDOMAIN is judged as a negative
answer. An answer no zone of its window is known for is **not judged** (neither correct nor
incorrect), and so is one that matches no held zone while its letter served a serial whose zone
the collector does not hold. The ratio per country and letter is correct / judged over the
window ([skm]), unweighted, as RSSAC047 defines it; threshold 1 ([ahw]).

Cost: a record is judged once, when the deriver first sees it in its window
(``judge_pending``), and its verdict stored in ``root_correctness``; a record left with
unjudged answers is judged again only after a new zone was stored. A refresh reads verdict
sums, never wire answers; parsed zones stay in memory (``collectors.rootzone``).
"""

from __future__ import annotations

import base64
import collections
import dataclasses
import datetime as dt
import functools
import logging
import threading
import time
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import dns.dnssec
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataset
import dns.rdatatype
import dns.rrset
from publiccore.collectors import rootzone
from publiccore.collectors.derive import figures as fig

from publiccore import anchors as trust
from publiccore import domains
from publiccore.clock import parse_rfc3339
from publiccore.errors import PubliccoreError
from publiccore.records import DnsQuery, Record
from publiccore.store.zones import CorrectnessRow, StoredZone

log = logging.getLogger(__name__)

WINDOW_SECONDS = 48 * 3600.0  # RSSAC047 [yhu]
THRESHOLD = 1.0  # RSSAC047 [ahw]
BATCH_RECORDS = 500  # records judged per refresh at most (the rest at the next one)
BUDGET_SECONDS = 10.0  # and no more judging than this per refresh (the rest at the next one)
JUDGED_QTYPES = frozenset({"SOA", "NS", "DNSKEY", "DS", "A"})
_ROOT = dns.name.root
_WILDCARD = dns.name.from_text("*.")
T = dns.rdatatype


class CorrectnessStore(rootzone.ZoneStore, Protocol):
    """The store methods the judge uses (``SqlStore`` has them)."""

    def root_zones_version(self) -> float: ...

    def serial_spans(self) -> list[tuple[int, float, float]]: ...

    def records_to_judge(
        self, *, since: float, until: float, zones_version: float, limit: int
    ) -> list[str]: ...

    def get_record(self, record_id: str) -> Record | None: ...

    def put_correctness(self, rows: Iterable[CorrectnessRow]) -> int: ...

    def correctness_totals(
        self, *, since: float, until: float
    ) -> list[tuple[str, str, int, int]]: ...


@functools.cache
def bundled_anchors() -> tuple[trust.TrustAnchor, ...]:
    """The IANA trust anchors publiccore ships (read once)."""
    return tuple(trust.load_anchors())


# --- one answer ---------------------------------------------------------------------------------


class Incorrect(Exception):
    """Why an answer is not correct for a zone (a short text)."""


def _sections(message: dns.message.Message) -> dict[str, list[dns.rrset.RRset]]:
    return {
        "answer": list(message.answer),
        "authority": list(message.authority),
        "additional": list(message.additional),
    }


def _find(
    rrsets: Sequence[dns.rrset.RRset],
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
) -> dns.rrset.RRset | None:
    return next((r for r in rrsets if r.name == name and r.rdtype == rdtype), None)


def _sigs(
    rrsets: Sequence[dns.rrset.RRset], name: dns.name.Name, covers: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    return next(
        (
            r
            for r in rrsets
            if r.name == name and r.rdtype == dns.rdatatype.RRSIG and r.covers == covers
        ),
        None,
    )


def _text(name: dns.name.Name, rdtype: dns.rdatatype.RdataType) -> str:
    return f"{name.to_text()} {dns.rdatatype.to_text(rdtype)}"


def _zone_keys(
    zone: rootzone.RootZone, anchors: Sequence[trust.TrustAnchor], when: dt.datetime
) -> dns.rdataset.Rdataset:
    """The zone's DNSKEY set, once its RRSIG by an anchored key validates at ``when``.

    A validation holds for the overlap of its signature's and its anchor's validity periods;
    the zone remembers those periods, so the signature is verified once per zone.
    """
    keys = zone.rdataset(_ROOT, T.DNSKEY)
    sigs = zone.rdataset(_ROOT, T.RRSIG, T.DNSKEY)
    if keys is None or sigs is None:
        raise Incorrect(f"zone {zone.serial} has no signed DNSKEY set")
    now = when.timestamp()
    memo_key = ("keys", tuple(anchors))
    periods: list[tuple[float, float]] = zone.memo.setdefault(memo_key, [])
    if any(lo <= now <= hi for lo, hi in periods):
        return keys
    trusted = trust.anchored_keys(list(keys), anchors, when)
    if not trusted:
        raise Incorrect(f"zone {zone.serial}: no DNSKEY matches a trust anchor valid then")
    anchored = dns.rdataset.from_rdata_list(keys.ttl, trusted)
    rrset = dns.rrset.from_rdata_list(_ROOT, keys.ttl, list(keys))
    failures = []
    for sig in sigs:
        try:
            dns.dnssec.validate_rrsig(rrset, sig, {_ROOT: anchored}, now=now)
        except (dns.dnssec.ValidationFailure, dns.exception.UnsupportedAlgorithm) as exc:
            failures.append(str(exc))
            continue
        lo, hi = float(sig.inception), float(sig.expiration)
        for anchor in anchors:
            if anchor.key_tag == sig.key_tag and anchor.valid_at(when):
                if anchor.valid_from is not None:
                    lo = max(lo, anchor.valid_from.timestamp())
                if anchor.valid_until is not None:
                    hi = min(hi, anchor.valid_until.timestamp() - 1e-6)
                break
        periods.append((lo, hi))
        return keys
    reason = "; ".join(failures) or "no signature by an anchored key"
    raise Incorrect(f"zone {zone.serial}: DNSKEY set does not validate then ({reason})")


def _canonical(rrset: dns.rrset.RRset) -> frozenset[bytes]:
    return frozenset(r.to_digestable() for r in rrset)


def _verify(
    zone: rootzone.RootZone,
    covered: dns.rrset.RRset,
    sigs: dns.rrset.RRset,
    keys: dns.rdataset.Rdataset,
    when: dt.datetime,
) -> str | None:
    """None when one of ``sigs`` validates ``covered`` (an RRset equal to the zone's) with the
    zone's ``keys`` at ``when``, else why not. A signature verified once for a zone is only
    checked for its validity period afterwards (the data and the key are the zone's)."""
    now = when.timestamp()
    verified: set[bytes] = zone.memo.setdefault("verified", set())
    reasons = []
    for sig in sigs:
        digest = covered.name.to_digestable() + sig.to_digestable()
        if digest in verified:
            if sig.inception <= now <= sig.expiration:
                return None
            reasons.append(f"signature by {sig.key_tag} not valid then")
            continue
        try:
            dns.dnssec.validate_rrsig(covered, sig, {_ROOT: keys}, now=now)
        except (dns.dnssec.ValidationFailure, dns.exception.UnsupportedAlgorithm) as exc:
            reasons.append(str(exc))
            continue
        verified.add(digest)
        return None
    return "; ".join(reasons) or "no signature"


def _match_and_validate(
    message: dns.message.Message,
    zone: rootzone.RootZone,
    keys: dns.rdataset.Rdataset,
    when: dt.datetime,
) -> None:
    """Every RRset (but RRSIGs) equals the zone's; every RRSIG set validates its RRset."""
    sections = _sections(message)
    for section, rrsets in sections.items():
        for rrset in rrsets:
            if rrset.rdtype == T.RRSIG:
                continue
            expected = zone.canonical(rrset.name, rrset.rdtype)
            if expected is None:
                raise Incorrect(
                    f"{section}: {_text(rrset.name, rrset.rdtype)} is not in zone {zone.serial}"
                )
            if _canonical(rrset) != expected:
                raise Incorrect(
                    f"{section}: {_text(rrset.name, rrset.rdtype)} differs from zone {zone.serial}"
                )
    for section, rrsets in sections.items():
        for rrset in rrsets:
            if rrset.rdtype != T.RRSIG:
                continue
            covered = _find(rrsets, rrset.name, rrset.covers)
            if covered is None:
                raise Incorrect(
                    f"{section}: RRSIG over {_text(rrset.name, rrset.covers)} without the RRset"
                )
            failure = _verify(zone, covered, rrset, keys, when)
            if failure is not None:
                raise Incorrect(
                    f"{section}: {_text(rrset.name, rrset.covers)} does not validate ({failure})"
                )


def _signed(
    rrsets: Sequence[dns.rrset.RRset],
    name: dns.name.Name,
    rdtype: dns.rdatatype.RdataType,
    section: str,
) -> dns.rrset.RRset:
    """The RRset of ``name``/``rdtype`` with its RRSIG in ``rrsets``, or raise Incorrect."""
    rrset = _find(rrsets, name, rdtype)
    if rrset is None:
        raise Incorrect(f"{section}: no {_text(name, rdtype)}")
    if _sigs(rrsets, name, rdtype) is None:
        raise Incorrect(f"{section}: {_text(name, rdtype)} without RRSIG")
    return rrset


def _empty(rrsets: Sequence[dns.rrset.RRset], section: str) -> None:
    if rrsets:
        raise Incorrect(f"{section} section not empty")


def _aa(message: dns.message.Message, expected: bool) -> None:
    if bool(message.flags & dns.flags.AA) != expected:
        raise Incorrect("AA bit set on a referral" if not expected else "AA bit not set")


def _covers(nsec: dns.rrset.RRset, name: dns.name.Name) -> bool:
    """Whether an NSEC proves ``name`` absent: owner < name < next (canonical order), or
    owner < name for the last NSEC of the chain (its next name is the apex)."""
    owner, following = nsec.name, nsec[0].next
    if following <= owner:
        return owner < name
    return owner < name < following


def _negative(message: dns.message.Message, qname: dns.name.Name) -> None:
    sections = _sections(message)
    _aa(message, True)
    _empty(sections["answer"], "answer")
    authority = sections["authority"]
    _signed(authority, _ROOT, T.SOA, "authority")
    nsecs = [r for r in authority if r.rdtype == T.NSEC]
    if not nsecs:
        raise Incorrect("NXDOMAIN without NSEC")
    if not any(_covers(n, qname) and _sigs(authority, n.name, T.NSEC) for n in nsecs):
        raise Incorrect(f"no signed NSEC covers {qname.to_text()}")
    root_nsec = _find(authority, _ROOT, T.NSEC)
    if root_nsec is None or _sigs(authority, _ROOT, T.NSEC) is None:
        raise Incorrect("no signed root NSEC (wildcard proof)")
    if not _covers(root_nsec, _WILDCARD):
        raise Incorrect("root NSEC does not deny the wildcard")
    _empty(sections["additional"], "additional")


def _referral(message: dns.message.Message, tld: dns.name.Name, zone: rootzone.RootZone) -> None:
    sections = _sections(message)
    _aa(message, False)
    _empty(sections["answer"], "answer")
    authority = sections["authority"]
    ns = _find(authority, tld, T.NS)
    if ns is None:
        raise Incorrect(f"authority: no {_text(tld, T.NS)}")
    if zone.rdataset(tld, T.DS) is not None:
        _signed(authority, tld, T.DS, "authority")
    else:
        if _find(authority, tld, T.DS) is not None:
            raise Incorrect(f"authority: {_text(tld, T.DS)} the zone does not hold")
        nsec = _signed(authority, tld, T.NSEC, "authority")
        if any(T.DS in _nsec_types(r) for r in nsec):
            raise Incorrect(f"NSEC of {tld.to_text()} does not deny its DS")
    targets = {r.target for r in ns}
    glue = [r for r in sections["additional"] if r.rdtype in (T.A, T.AAAA) and r.name in targets]
    if not glue:
        raise Incorrect("additional: no address of a name server of the referral")


def _nsec_types(rdata: object) -> set[dns.rdatatype.RdataType]:
    """The types an NSEC's bitmap lists (from its text form: next name, then the types)."""
    return {dns.rdatatype.from_text(t) for t in str(rdata).split()[1:]}


def _positive(
    message: dns.message.Message,
    qname: dns.name.Name,
    qtype: dns.rdatatype.RdataType,
    zone: rootzone.RootZone,
) -> None:
    sections = _sections(message)
    answer, authority, additional = (sections[s] for s in ("answer", "authority", "additional"))
    if qname == _ROOT:
        _aa(message, True)
        if qtype == T.SOA:  # [owf]
            _signed(answer, _ROOT, T.SOA, "answer")
            if authority:
                _signed(authority, _ROOT, T.NS, "authority")
        elif qtype == T.NS:  # [amj]
            _signed(answer, _ROOT, T.NS, "answer")
            _empty(authority, "authority")
        elif qtype == T.DNSKEY:  # [djd]
            _signed(answer, _ROOT, T.DNSKEY, "answer")
            _empty(authority, "authority")
            _empty(additional, "additional")
        else:
            raise Incorrect(f"no rule for . {dns.rdatatype.to_text(qtype)}")
        return
    tld = qname.split(2)[1]
    if qname == tld and qtype == T.DS:  # [dru]
        _aa(message, True)
        if zone.rdataset(tld, T.DS) is None:
            # an unsigned delegation: NODATA with the TLD's NSEC denying the DS (publiccore's
            # rule; RSSAC047 states none for a TLD without DS)
            _empty(answer, "answer")
            _signed(authority, _ROOT, T.SOA, "authority")
            nsec = _signed(authority, tld, T.NSEC, "authority")
            if any(T.DS in _nsec_types(r) for r in nsec):
                raise Incorrect(f"NSEC of {tld.to_text()} does not deny its DS")
            _empty(additional, "additional")
            return
        _signed(answer, tld, T.DS, "answer")
        _empty(authority, "authority")
        _empty(additional, "additional")
        return
    _referral(message, tld, zone)  # [hmk]: a TLD's NS, or a name below it


def judge_message(
    message: dns.message.Message,
    *,
    qname: str,
    qtype: str,
    zone: rootzone.RootZone,
    when: dt.datetime,
    anchors: Sequence[trust.TrustAnchor],
) -> str | None:
    """None when ``message`` is a correct answer to ``qname``/``qtype`` for ``zone`` at
    ``when`` (see the module doc), else the reason it is not."""
    try:
        keys = _zone_keys(zone, anchors, when)
        _match_and_validate(message, zone, keys, when)
        name = dns.name.from_text(qname)
        if message.rcode() == dns.rcode.NXDOMAIN:
            _negative(message, name)
        else:
            _positive(message, name, dns.rdatatype.from_text(qtype), zone)
    except Incorrect as exc:
        return str(exc)
    return None


# --- one record ---------------------------------------------------------------------------------


def judgeable(query: DnsQuery) -> dns.message.Message | None:
    """The answer of a correctness query, parsed, or None when it is not one to judge: not IN,
    not a correctness question, no answer, truncated, an RCODE other than NOERROR or
    NXDOMAIN ([ote]: as a timeout), asked without the DNSSEC OK bit (none echoed), or an
    answer to another question than the record names."""
    if query.qclass != "IN" or query.qtype not in JUDGED_QTYPES or query.tc:
        return None
    if query.rcode not in ("NOERROR", "NXDOMAIN") or not query.wire_b64:
        return None
    try:
        wire = base64.b64decode(query.wire_b64)
    except ValueError:
        return None
    message = _parsed(wire)
    if message is None or not message.ednsflags & dns.flags.DO or len(message.question) != 1:
        return None
    question = message.question[0]
    try:  # the answer must be to the question the record says was asked
        asked = dns.name.from_text(query.qname)
    except (dns.exception.DNSException, ValueError):
        return None
    if question.name != asked or dns.rdatatype.to_text(question.rdtype) != query.qtype:
        return None
    return message


_MESSAGES: collections.OrderedDict[bytes, dns.message.Message | None] = collections.OrderedDict()
_MESSAGES_KEPT = 4096
_MESSAGES_LOCK = threading.Lock()


def _parsed(wire: bytes) -> dns.message.Message | None:
    """The message of ``wire`` (None if malformed). Parsing dominates judging, and one site
    sends the same answer to every probe but for the message ID: parsed messages are kept by
    their wire form without the ID (the least recently used dropped beyond 4096)."""
    key = wire[2:]
    with _MESSAGES_LOCK:
        if key in _MESSAGES:
            _MESSAGES.move_to_end(key)
            return _MESSAGES[key]
    try:
        message: dns.message.Message | None = dns.message.from_wire(wire)
    except (dns.exception.DNSException, ValueError):
        message = None
    with _MESSAGES_LOCK:
        _MESSAGES[key] = message
        while len(_MESSAGES) > _MESSAGES_KEPT:
            _MESSAGES.popitem(last=False)
    return message


def _answer_serial(message: dns.message.Message) -> int | None:
    for rrset in (*message.answer, *message.authority):
        if rrset.name == _ROOT and rrset.rdtype == T.SOA:
            return int(rrset[0].serial)
    return None


def validation_time(record: Record) -> dt.datetime:
    """When a record's answers are validated: the time its probe validated at (normally
    when it measured; another one when the probe replayed a past moment), else its start."""
    root = record.root
    stamp = root.integrity.validated_at if root is not None else None
    if stamp:
        try:
            return parse_rfc3339(stamp)
        except ValueError:
            pass
    return record.started


@dataclasses.dataclass(frozen=True, slots=True)
class ZoneWindow:
    """The stored zones and the times each serial was seen (for ``zones_for``)."""

    stored: Mapping[int, StoredZone]
    spans: Mapping[int, tuple[float, float]]  # serial → (first seen, last seen)

    def serials_for(self, time: float) -> list[int]:
        """Stored serials seen (or stored) in the 48 h up to ``time``, newest first."""
        since = time - WINDOW_SECONDS
        out = []
        for serial, zone in self.stored.items():
            first, last = self.spans.get(serial, (float("inf"), float("-inf")))
            seen = first <= time and last >= since
            if seen or since <= zone.imported <= time:
                out.append(serial)
        return sorted(out, reverse=True)


def judge_record(
    record: Record,
    *,
    window: ZoneWindow,
    load: rootzone.ZoneStore,
    anchors: Sequence[trust.TrustAnchor],
    zones_version: float,
) -> CorrectnessRow | None:
    """The verdict on a record's correctness answers (None for a record no figure can carry:
    not root-dns, no probe country, a letter or country outside its domain)."""
    root, target = record.root, record.root_target
    country = record.probe.country
    if root is None or target is None or not country or not domains.is_country(country):
        return None
    letter = target.letter.lower()
    if letter not in domains.LETTERS:
        return None
    when = validation_time(record)
    serials = window.serials_for(record.started.timestamp())
    judged = correct = unjudged = 0
    reasons: list[str] = []
    for query in root.queries:
        message = judgeable(query)
        if message is None:
            continue
        # the serial the letter served: the answer's own SOA, else the record's SOA answer
        own = _answer_serial(message) or root.serial
        order = [own] if own is not None and own in window.stored else []
        order += [s for s in serials if s != own]
        outcome: str | None = None  # None: no zone could be read; "": correct
        for serial in order:
            zone = rootzone.load_zone(load, window.stored[serial])
            if zone is None:
                continue
            try:
                reason = judge_message(
                    message,
                    qname=query.qname,
                    qtype=query.qtype,
                    zone=zone,
                    when=when,
                    anchors=anchors,
                )
            except (dns.exception.DNSException, ValueError) as exc:  # data no rule expects
                reason = f"unusable answer ({type(exc).__name__})"
            if reason is None:
                outcome = ""
                break  # RSSAC047 [yhu]: until a correct result is found
            outcome = outcome or f"zone {serial}: {reason}"
        if outcome is None or (outcome and own is not None and own not in window.stored):
            # no zone, or the zone the letter served is not held and no other one matches:
            # an incorrect verdict needs the zone the answer came from
            unjudged += 1
            continue
        judged += 1
        if outcome == "":
            correct += 1
        else:
            reasons.append(f"{query.qname} {query.qtype}/{query.transport}: {outcome}")
    return CorrectnessRow(
        record_id=record.id,
        time=record.started.timestamp(),
        country=country,
        letter=letter,
        judged=judged,
        correct=correct,
        unjudged=unjudged,
        zones_version=zones_version,
        detail="; ".join(reasons)[:2000],
    )


# --- the store ----------------------------------------------------------------------------------


def zone_window(store: CorrectnessStore) -> ZoneWindow:
    """The stored zones and the sighting span of every serial."""
    return ZoneWindow(
        stored={z.serial: z for z in store.root_zones()},
        spans={serial: (first, last) for serial, first, last in store.serial_spans()},
    )


def judge_pending(
    store: CorrectnessStore,
    *,
    since: float,
    until: float,
    limit: int = BATCH_RECORDS,
    anchors: Sequence[trust.TrustAnchor] | None = None,
    budget_seconds: float = BUDGET_SECONDS,
) -> int:
    """Judge the records started in [since, until) that have no verdict yet (or were left
    unjudged before the newest zone), at most ``limit`` and for about ``budget_seconds`` of
    judging at most (the first record always; parsing a zone does not count); store the
    verdicts; return how many."""
    version = store.root_zones_version()
    ids = store.records_to_judge(since=since, until=until, zones_version=version, limit=limit)
    if not ids:
        return 0
    window = zone_window(store)
    chosen = bundled_anchors() if anchors is None else tuple(anchors)
    rows = []
    # the budget is for judging: parsing a zone (once per process) does not count
    deadline = time.monotonic() + budget_seconds - rootzone.parse_seconds()
    for record_id in ids:
        if rows and time.monotonic() - rootzone.parse_seconds() > deadline:
            log.info("correctness: judged %d of %d records, the rest later", len(rows), len(ids))
            break  # the rest at the next refresh
        record = store.get_record(record_id)
        if record is None:
            continue
        row = judge_record(record, window=window, load=store, anchors=chosen, zones_version=version)
        rows.append(
            row
            if row is not None
            else CorrectnessRow(record_id, record.started.timestamp(), "", "", 0, 0, 0, version)
        )
    return store.put_correctness(rows)


Labels = tuple[str, ...]


def correctness(
    store: CorrectnessStore, *, since: float, until: float
) -> tuple[dict[Labels, float], dict[Labels, float]]:
    """Per (country, letter) over records started in [since, until): the correctness ratio
    (correct / judged) and the judged answers; pairs with nothing judged are absent."""
    ratio: dict[Labels, float] = {}
    judged: dict[Labels, float] = {}
    for country, letter, n, ok in store.correctness_totals(since=since, until=until):
        if not country or n <= 0:
            continue
        ratio[(country, letter)] = ok / n
        judged[(country, letter)] = float(n)
    return ratio, judged


def judge_window(store: object, *, since: float, until: float, limit: int = BATCH_RECORDS) -> int:
    """``judge_pending`` on the deriver's store (``SqlStore``: it has the root zone tables);
    a failure (e.g. a stored zone unreadable) is logged, and 0 returned."""
    try:
        return judge_pending(
            typing.cast(CorrectnessStore, store), since=since, until=until, limit=limit
        )
    except PubliccoreError as exc:
        log.warning("correctness: judging failed: %s", exc)
        return 0


def figures(
    store: object,
    *,
    since: float,
    until: float,
    limit: int = BATCH_RECORDS,
    judge: bool = True,
) -> tuple[fig.Correctness, ...]:
    """(Unless not ``judge``: judge what is pending in the window, then) the correctness of
    every (country, letter) with something judged. The deriver judges after it published a
    snapshot (``Aggregator.background``), so a refresh never waits for judging.

    ``store`` is the deriver's store (``SqlStore``: it has the root zone tables).
    """
    tables = typing.cast(CorrectnessStore, store)
    if judge:
        judge_window(store, since=since, until=until, limit=limit)
    ratio, judged = correctness(tables, since=since, until=until)
    return tuple(
        fig.Correctness(country, letter, ratio=ratio[(country, letter)], judged=int(n))
        for (country, letter), n in sorted(judged.items())
    )
