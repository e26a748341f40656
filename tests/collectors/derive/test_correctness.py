"""RSSAC047 §5.3 correctness judged on answers built from real signed root zones.

Each answer is assembled by hand from the RRsets of the real zone (shared/data/root), as a
root server would send it, and judged at a time inside the zone's signature validity: the
2023-05-11 zone (serial 2023051100, KSK 20326) at 2023-05-11T12:00Z and the 2014-06-25 zone
(serial 2014062501, KSK 19036) at 2014-06-25T12:00Z.
"""

from __future__ import annotations

import base64
import datetime as dt
import pathlib

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import pytest
from publiccore.collectors import rootzone
from publiccore.collectors.derive import correctness

from publiccore.records import (
    Consistency,
    DnsQuery,
    Integrity,
    ProbeRef,
    RootResult,
    RootTarget,
    SiteIdentity,
    make_record,
)
from publiccore.store.sqlite import SqliteStore
from tests.collectors.derive import zone_answers

T = dns.rdatatype
WHEN_2023 = dt.datetime(2023, 5, 11, 12, tzinfo=dt.UTC)
WHEN_2014 = dt.datetime(2014, 6, 25, 12, tzinfo=dt.UTC)
NEGATIVE = "www.rssac047-test.twxoozxmew."


@pytest.fixture(scope="module")
def zone_2023(shared_data: pathlib.Path) -> rootzone.RootZone:
    text = (shared_data / "root" / "dns_audit" / "root.zone").read_bytes()
    return rootzone.parse_zone(text, where="dns_audit/root.zone")


@pytest.fixture(scope="module")
def zone_2014(shared_data: pathlib.Path) -> rootzone.RootZone:
    text = (shared_data / "root" / "dns-root-data" / "root.zone").read_bytes()
    return rootzone.parse_zone(text, where="dns-root-data/root.zone")


def _answer(
    qname: str,
    qtype: T.RdataType,
    *,
    aa: bool,
    rcode: dns.rcode.Rcode = dns.rcode.NOERROR,
    answer: list[dns.rrset.RRset] | None = None,
    authority: list[dns.rrset.RRset] | None = None,
    additional: list[dns.rrset.RRset] | None = None,
    do: bool = True,
) -> dns.message.Message:
    """A response as a root server sends it (DO echoed), through wire form and back."""
    query = dns.message.make_query(qname, qtype, want_dnssec=do, payload=1232)
    response = dns.message.make_response(query)
    response.use_edns(0, dns.flags.DO if do else 0, 1232)
    response.set_rcode(rcode)
    if aa:
        response.flags |= dns.flags.AA
    response.answer = list(answer or [])
    response.authority = list(authority or [])
    response.additional = list(additional or [])
    return dns.message.from_wire(response.to_wire())


def _judge(message: dns.message.Message, qname: str, qtype: str, zone: rootzone.RootZone, when):
    return correctness.judge_message(
        message,
        qname=qname,
        qtype=qtype,
        zone=zone,
        when=when,
        anchors=correctness.bundled_anchors(),
    )


def test_correct_root_ns_answer(zone_2023: rootzone.RootZone) -> None:
    message = _answer(
        ".",
        T.NS,
        aa=True,
        answer=zone_answers.rrsets(zone_2023, ".", T.NS),
        additional=zone_answers.glue(zone_2023, "."),
    )
    assert _judge(message, ".", "NS", zone_2023, WHEN_2023) is None


def test_correct_root_ns_answer_needs_a_valid_signature_then(
    zone_2023: rootzone.RootZone,
) -> None:
    message = _answer(".", T.NS, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.NS))
    later = WHEN_2023 + dt.timedelta(days=60)  # the zone's RRSIGs expired meanwhile
    reason = _judge(message, ".", "NS", zone_2023, later)
    assert reason is not None and "validate" in reason
    unsigned = _answer(".", T.NS, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.NS)[:1])
    assert _judge(unsigned, ".", "NS", zone_2023, WHEN_2023) == "answer: . NS without RRSIG"


def test_correct_tld_referral_with_ds_and_a_wrong_delegation(zone_2023: rootzone.RootZone) -> None:
    authority = zone_answers.rrsets(zone_2023, "com.", T.NS)[:1] + zone_answers.rrsets(
        zone_2023, "com.", T.DS
    )
    good = _answer(
        "com.", T.NS, aa=False, authority=authority, additional=zone_answers.glue(zone_2023, "com.")
    )
    assert _judge(good, "com.", "NS", zone_2023, WHEN_2023) is None
    wrong_ns = dns.rrset.from_text("com.", 172800, "IN", "NS", "ns1.hijack.example.")
    wrong = _answer(
        "com.",
        T.NS,
        aa=False,
        authority=[wrong_ns, *authority[1:]],
        additional=[dns.rrset.from_text("ns1.hijack.example.", 172800, "IN", "A", "192.0.2.99")],
    )
    assert (
        _judge(wrong, "com.", "NS", zone_2023, WHEN_2023)
        == "authority: com. NS differs from zone 2023051100"
    )
    authoritative = _answer(
        "com.", T.NS, aa=True, authority=authority, additional=zone_answers.glue(zone_2023, "com.")
    )
    assert _judge(authoritative, "com.", "NS", zone_2023, WHEN_2023) == "AA bit set on a referral"


def test_referral_of_a_tld_without_ds_needs_its_nsec(zone_2023: rootzone.RootZone) -> None:
    tld = next(
        name.to_text()
        for name, node in sorted(zone_2023.zone.nodes.items())
        if len(name) == 2
        and node.get_rdataset(dns.rdataclass.IN, T.NS)
        and not node.get_rdataset(dns.rdataclass.IN, T.DS)
    )
    ns = zone_answers.rrsets(zone_2023, tld, T.NS)[:1]
    nsec = zone_answers.rrsets(zone_2023, tld, T.NSEC)
    good = _answer(
        tld, T.NS, aa=False, authority=ns + nsec, additional=zone_answers.glue(zone_2023, tld)
    )
    assert _judge(good, tld, "NS", zone_2023, WHEN_2023) is None
    bare = _answer(tld, T.NS, aa=False, authority=ns, additional=zone_answers.glue(zone_2023, tld))
    assert _judge(bare, tld, "NS", zone_2023, WHEN_2023) == f"authority: no {tld} NSEC"


def test_tld_ds_answer(zone_2023: rootzone.RootZone) -> None:
    good = _answer("nl.", T.DS, aa=True, answer=zone_answers.rrsets(zone_2023, "nl.", T.DS))
    assert _judge(good, "nl.", "DS", zone_2023, WHEN_2023) is None
    forged = dns.rrset.from_text("nl.", 86400, "IN", "DS", "1 8 2 " + "00" * 32)
    bad = _answer(
        "nl.", T.DS, aa=True, answer=[forged, zone_answers.rrsets(zone_2023, "nl.", T.DS)[1]]
    )
    assert _judge(bad, "nl.", "DS", zone_2023, WHEN_2023) == (
        "answer: nl. DS differs from zone 2023051100"
    )


def test_ds_of_a_tld_without_ds_is_a_signed_nodata(zone_2023: rootzone.RootZone) -> None:
    # tr. is delegated without DS in the 2023 zone: "tr. NSEC trade. NS RRSIG NSEC"
    assert zone_2023.rdataset(dns.name.from_text("tr."), T.DS) is None
    authority = zone_answers.rrsets(zone_2023, ".", T.SOA) + zone_answers.rrsets(
        zone_2023, "tr.", T.NSEC
    )
    good = _answer("tr.", T.DS, aa=True, authority=authority)
    assert _judge(good, "tr.", "DS", zone_2023, WHEN_2023) is None
    bare = _answer("tr.", T.DS, aa=True, authority=zone_answers.rrsets(zone_2023, ".", T.SOA))
    assert _judge(bare, "tr.", "DS", zone_2023, WHEN_2023) == "authority: no tr. NSEC"


def _negative(zone: rootzone.RootZone, *, with_nsec: bool) -> dns.message.Message:
    authority = zone_answers.rrsets(zone, ".", T.SOA)
    if with_nsec:
        authority += zone_answers.rrsets(zone, zone_answers.covering_nsec(zone, NEGATIVE), T.NSEC)
        authority += zone_answers.rrsets(zone, ".", T.NSEC)
    return _answer(NEGATIVE, T.A, aa=True, rcode=dns.rcode.NXDOMAIN, authority=authority)


def test_negative_answer_with_and_without_nsec(zone_2023: rootzone.RootZone) -> None:
    # www.rssac047-test.twxoozxmew. sorts between tw. and tz. (the zone's "tw. NSEC tz."): that
    # NSEC covers it; the root NSEC (. → aaa.) denies the wildcard *.
    assert zone_answers.covering_nsec(zone_2023, NEGATIVE) == "tw."
    assert _judge(_negative(zone_2023, with_nsec=True), NEGATIVE, "A", zone_2023, WHEN_2023) is None
    assert (
        _judge(_negative(zone_2023, with_nsec=False), NEGATIVE, "A", zone_2023, WHEN_2023)
        == "NXDOMAIN without NSEC"
    )


def test_nxdomain_for_an_existing_tld_is_incorrect(zone_2023: rootzone.RootZone) -> None:
    authority = zone_answers.rrsets(zone_2023, ".", T.SOA) + zone_answers.rrsets(
        zone_2023, ".", T.NSEC
    )
    message = _answer("com.", T.NS, aa=True, rcode=dns.rcode.NXDOMAIN, authority=authority)
    assert _judge(message, "com.", "NS", zone_2023, WHEN_2023) == "no signed NSEC covers com."


def test_2014_zone_and_key(zone_2014: rootzone.RootZone, zone_2023: rootzone.RootZone) -> None:
    message = _answer(".", T.DNSKEY, aa=True, answer=zone_answers.rrsets(zone_2014, ".", T.DNSKEY))
    assert _judge(message, ".", "DNSKEY", zone_2014, WHEN_2014) is None
    # the 2014 key set is not the 2023 one
    assert "differs" in (_judge(message, ".", "DNSKEY", zone_2023, WHEN_2023) or "")


# --- records through the store ---------------------------------------------------------------


def _query(message: dns.message.Message, qname: str, qtype: str) -> DnsQuery:
    wire = message.to_wire()
    return DnsQuery(
        qname=qname,
        qclass="IN",
        qtype=qtype,
        transport="udp",
        rcode=dns.rcode.to_text(message.rcode()),
        aa=bool(message.flags & dns.flags.AA),
        tc=False,
        rtt_seconds=0.01,
        serial=None,
        size_bytes=len(wire),
        wire_b64=base64.b64encode(wire).decode("ascii"),
    )


def _soa_query(zone: rootzone.RootZone) -> DnsQuery:
    message = _answer(".", T.SOA, aa=True, answer=zone_answers.rrsets(zone, ".", T.SOA))
    return dataclasses_replace(_query(message, ".", "SOA"), serial=zone.serial)


def dataclasses_replace(query: DnsQuery, **changes: object) -> DnsQuery:
    import dataclasses

    return dataclasses.replace(query, **changes)  # type: ignore[arg-type]


def _record(letter: str, queries: list[DnsQuery], when: dt.datetime):
    return make_record(
        kind="root-dns",
        probe=ProbeRef(id="p1", asn=64500, country="NL"),
        target=RootTarget(
            letter=letter, name=f"{letter}.root-servers.net.", address="192.0.2.1", family="ipv4"
        ),
        result=RootResult(
            queries=tuple(queries),
            identity=SiteIdentity(),
            integrity=Integrity(outcome="iana", validated_at="2023-05-11T12:00:00.000000Z"),
            consistency=Consistency(),
        ),
        started=when,
        finished=when + dt.timedelta(seconds=1),
    )


def test_records_judged_once_per_letter_and_not_judged_without_a_zone(
    zone_2023: rootzone.RootZone, shared_data: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    store = SqliteStore(tmp_path / "store.sqlite")
    soa = _soa_query(zone_2023)
    good_ns = _query(
        _answer(".", T.NS, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.NS)), ".", "NS"
    )
    negative_bad = _query(_negative(zone_2023, with_nsec=False), NEGATIVE, "A")
    negative_good = _query(_negative(zone_2023, with_nsec=True), NEGATIVE, "A")
    unsigned_soa = _query(
        _answer(
            ".", T.SOA, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.SOA)[:1], do=False
        ),
        ".",
        "SOA",
    )
    wrong_referral = _query(
        _answer(
            "com.",
            T.NS,
            aa=False,
            authority=[dns.rrset.from_text("com.", 172800, "IN", "NS", "ns1.hijack.example.")],
        ),
        "com.",
        "NS",
    )
    a = _record("a", [soa, good_ns, negative_good, unsigned_soa], WHEN_2023)
    b = _record("b", [soa, good_ns, negative_bad], WHEN_2023)
    # c says it serves serial 2023051200, a zone the collector does not hold: what matches the
    # held zone is correct, what does not is not judged (the zone it came from is unknown)
    newer_soa = dataclasses_replace(soa, serial=2023051200, wire_b64=None, rcode="NOERROR")
    c = _record("c", [newer_soa, good_ns, wrong_referral], WHEN_2023)
    store.put_records([a, b, c])
    since, until = WHEN_2023.timestamp() - 60, WHEN_2023.timestamp() + 60

    # no zone stored: nothing judged, no figure
    assert correctness.judge_pending(store, since=since, until=until) == 3
    assert correctness.correctness(store, since=since, until=until) == ({}, {})
    rows = {r.record_id: r for r in store.iter_correctness(since=since, until=until)}
    assert (rows[a.id].judged, rows[a.id].unjudged) == (0, 3)  # the DO-less SOA is no candidate
    assert correctness.judge_pending(store, since=since, until=until) == 0  # nothing new

    imported = rootzone.import_zone_file(store, shared_data / "root" / "dns_audit" / "root.zone")
    assert (imported.serial, imported.new) == (2023051100, True)
    assert imported.packed_size < imported.size / 2
    assert not rootzone.import_zone_file(
        store, shared_data / "root" / "dns_audit" / "root.zone"
    ).new
    # a new zone: the records left unjudged are judged again
    assert correctness.judge_pending(store, since=since, until=until) == 3
    ratio, judged = correctness.correctness(store, since=since, until=until)
    assert ratio == {("NL", "a"): 1.0, ("NL", "b"): 2 / 3, ("NL", "c"): 1.0}
    assert judged == {("NL", "a"): 3.0, ("NL", "b"): 3.0, ("NL", "c"): 1.0}
    rows = {r.record_id: r for r in store.iter_correctness(since=since, until=until)}
    assert "NXDOMAIN without NSEC" in rows[b.id].detail
    assert (rows[c.id].judged, rows[c.id].unjudged) == (1, 1)
    assert correctness.judge_pending(store, since=since, until=until) == 0
    # judging again (after a definition change) gives the same verdicts
    assert store.clear_correctness(since=since, until=until) == 3
    # no budget left after the first record: one now, the rest at the next call
    assert correctness.judge_pending(store, since=since, until=until, budget_seconds=0.0) == 1
    assert correctness.judge_pending(store, since=since, until=until) == 2
    assert correctness.correctness(store, since=since, until=until) == (ratio, judged)
    store.close()


def test_zone_window_is_the_48_hours_before_the_record() -> None:
    from publiccore.store.zones import StoredZone

    stored = {
        1: StoredZone(1, imported=-1e6, source="f", sha256="x", size=1),
        2: StoredZone(2, imported=-1e6, source="f", sha256="y", size=1),
        3: StoredZone(3, imported=900_000.0, source="url", sha256="z", size=1),
    }
    hour = 3600.0
    window = correctness.ZoneWindow(
        stored=stored, spans={1: (0.0, 10 * hour), 2: (9 * hour, 100 * hour)}
    )
    assert window.serials_for(20 * hour) == [2, 1]
    assert window.serials_for(59 * hour) == [2]  # serial 1 last seen 49 h before
    assert window.serials_for(5 * hour) == [1]  # serial 2 not seen yet
    assert window.serials_for(900_000.0 + hour) == [3]  # stored (fetched) an hour before


def test_only_answers_to_the_named_question_are_judged(zone_2023: rootzone.RootZone) -> None:
    message = _answer(".", T.NS, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.NS))
    query = _query(message, ".", "NS")
    assert correctness.judgeable(query) is not None
    for changes in (
        {"qname": "com."},  # the wire answers another question
        {"qtype": "DS"},
        {"qname": "a..b."},  # not a name
        {"qclass": "CH"},
        {"rcode": "SERVFAIL"},  # as a timeout ([ote])
        {"tc": True},  # asked again over TCP
        {"wire_b64": "not base64!"},
    ):
        assert correctness.judgeable(dataclasses_replace(query, **changes)) is None, changes
    no_do = _answer(".", T.NS, aa=True, answer=zone_answers.rrsets(zone_2023, ".", T.NS), do=False)
    assert correctness.judgeable(_query(no_do, ".", "NS")) is None
