"""The one summary of a root round (``probe root``'s table and ``run``'s live view)."""

from __future__ import annotations

import datetime as dt

from publiccore.probes.summary import summarise_round

from publiccore import records as rec

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def soa(transport: str, **fields: object) -> rec.DnsQuery:
    base: dict[str, object] = {
        "rcode": "NOERROR",
        "tc": False,
        "rtt_seconds": 0.02,
        "serial": 2026112900,
    }
    base.update(fields)
    return rec.DnsQuery(qname=".", qclass="IN", qtype="SOA", transport=transport, **base)  # type: ignore[arg-type]


def record(
    letter: str,
    family: str,
    *queries: rec.DnsQuery,
    site: str | None = None,
    outcome: str = "iana",
    reason: str | None = None,
) -> rec.Record:
    return rec.make_record(
        kind="root-dns",
        probe=rec.ProbeRef(id="p1"),
        target=rec.RootTarget(
            letter=letter,
            name=f"{letter}.root-servers.net.",
            address="192.0.2.1" if family == "ipv4" else "2001:db8::1",
            family=family,  # type: ignore[arg-type]
        ),
        result=rec.RootResult(
            queries=queries,
            identity=rec.SiteIdentity(nsid=site),
            integrity=rec.Integrity(outcome=outcome, reason=reason),  # type: ignore[arg-type]
            consistency=rec.Consistency(status="inconsistent", differs=("serial 1 (majority 2)",)),
        ),
        started=T0,
        finished=T0,
    )


def test_a_round_per_address_and_per_letter() -> None:
    txt = rec.DnsQuery(qname="hostname.bind.", qclass="CH", qtype="TXT", transport="udp")
    records = [
        record("k", "ipv4", soa("udp"), soa("tcp", serial=2026112901), txt, site="k1.ams"),
        record(
            "k",
            "ipv6",
            soa("udp", rcode=None, rtt_seconds=None, serial=None, failure="dns_timeout"),
            soa("tcp", rcode="SERVFAIL", serial=None),
            site="k2.fra",
            outcome="bogus",
            reason="RRSIG expired",
        ),
        record("a", "ipv4", soa("udp", failure="truncated", tc=True), soa("tcp", rcode=None)),
    ]
    summary = summarise_round(records)
    assert [(a.letter, a.family) for a in summary.addresses] == [
        ("k", "ipv4"),
        ("k", "ipv6"),
        ("a", "ipv4"),
    ]
    k4, k6, a4 = summary.addresses
    assert [q.transport for q in k4.soa] == ["udp", "tcp"]  # the CH TXT query is not an SOA
    assert k4.answered and not k6.answered and a4.answered
    assert [q.problem for q in k6.soa] == ["dns_timeout", "rcode SERVFAIL"]
    assert [q.problem for q in a4.soa] == [None, "no answer"]  # a truncated answer counts
    assert (k6.integrity, k6.integrity_reason, k6.site) == ("bogus", "RRSIG expired", "k2.fra")
    assert k4.consistency == "inconsistent" and k4.differs == ("serial 1 (majority 2)",)
    assert summary.answered_addresses == 2
    a, k = summary.letters
    assert (a.letter, k.letter) == ("a", "k")
    assert k.sites == ("k1.ams", "k2.fra")
    assert k.serials == (2026112900, 2026112901)
    assert k.outcomes == ("iana", "bogus")
    assert set(k.soa) == {("ipv4", "udp"), ("ipv4", "tcp"), ("ipv6", "udp"), ("ipv6", "tcp")}
    assert summary.soa_answered("ipv4", "udp") == (2, 2)
    assert summary.soa_answered("ipv4", "tcp") == (1, 2)
    assert summary.soa_answered("ipv6", "udp") == (0, 1)
    assert summary.outcome_letters() == {"iana": 2, "bogus": 1}


def test_traceroutes_and_an_empty_round_summarise_to_nothing() -> None:
    trace = rec.make_record(
        kind="traceroute",
        probe=rec.ProbeRef(id="p1"),
        target=rec.TraceTarget(address="192.0.2.9", family="ipv4"),
        result=rec.TraceResult(hops=()),
        started=T0,
        finished=T0,
    )
    for records in ([], [trace]):
        summary = summarise_round(records)
        assert summary.addresses == () and summary.letters == ()
        assert summary.answered_addresses == 0
        assert summary.soa_answered("ipv4", "udp") == (0, 0)
