"""RSSAC047 correctness: judging once vs the refreshes after it.

    python benchmarks/correctness.py [--records 2000] [--zone PATH (default: the 2023 zone)]

Stores ``--records`` root-dns records (letters a-m, IPv4) whose seven correctness answers are
built from the real signed root zone of 2023-05-11 as a root server sends them (``. SOA`` over
UDP and TCP, ``. DNSKEY``, ``. NS``, a TLD's NS referral and DS, the negative name), imports the
zone, then times: the first ``judge_pending`` (every record judged, the zone parsed once), a
second one (nothing pending) plus the totals read, as the exporter's refresh does. Prints µs per
judged answer and the ratio of a refresh after judging to the judging itself: the refresh cost
does not grow with the records judged before.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import pathlib
import sys
import tempfile
import time

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
from publiccore.collectors import rootzone
from publiccore.collectors.derive import correctness
from publiccore.probes import correctness as plans

from publiccore.records import (
    DnsQuery,
    Integrity,
    ProbeRef,
    RootResult,
    RootTarget,
    SiteIdentity,
    make_record,
)
from publiccore.store.sqlite import SqliteStore

REPO = pathlib.Path(__file__).resolve().parents[1]
WHEN = dt.datetime(2023, 5, 11, 12, tzinfo=dt.UTC)


def _query(qname: str, qtype: T.RdataType, transport: str, **sections: object) -> DnsQuery:
    query = dns.message.make_query(qname, qtype, want_dnssec=True, payload=1232)
    response = dns.message.make_response(query)
    response.use_edns(0, dns.flags.DO, 1232)
    rcode = sections.pop("rcode", dns.rcode.NOERROR)
    response.set_rcode(rcode)  # type: ignore[arg-type]
    if sections.pop("aa", True):
        response.flags |= dns.flags.AA
    response.answer = list(sections.get("answer", []))  # type: ignore[call-overload]
    response.authority = list(sections.get("authority", []))  # type: ignore[call-overload]
    response.additional = list(sections.get("additional", []))  # type: ignore[call-overload]
    wire = response.to_wire()
    return DnsQuery(
        qname=qname,
        qclass="IN",
        qtype=T.to_text(qtype),
        transport=transport,  # type: ignore[arg-type]
        rcode=dns.rcode.to_text(rcode),  # type: ignore[arg-type]
        aa=True,
        tc=False,
        rtt_seconds=0.01,
        serial=2023051100 if qtype == T.SOA else None,
        size_bytes=len(wire),
        wire_b64=base64.b64encode(wire).decode("ascii"),
    )


def _queries(zone: rootzone.RootZone, seed: str) -> list[DnsQuery]:
    sys.path.insert(0, str(REPO))  # the zone answers the correctness tests build
    from tests.collectors.derive import zone_answers

    plan = plans.plan(seed, negative_share=1.0)
    negative = plan.negative_qname
    assert negative is not None
    nsec = zone_answers.covering_nsec(zone, negative)
    ds_authority = (
        zone_answers.rrsets(zone, plan.ns_tld, T.DS)
        if zone.rdataset(dns.name.from_text(plan.ns_tld), T.DS)
        else zone_answers.rrsets(zone, plan.ns_tld, T.NSEC)
    )
    return [
        _query(".", T.SOA, "udp", answer=zone_answers.rrsets(zone, ".", T.SOA)),
        _query(".", T.SOA, "tcp", answer=zone_answers.rrsets(zone, ".", T.SOA)),
        _query(".", T.DNSKEY, "udp", answer=zone_answers.rrsets(zone, ".", T.DNSKEY)),
        _query(
            ".",
            T.NS,
            "udp",
            answer=zone_answers.rrsets(zone, ".", T.NS),
            additional=zone_answers.glue(zone, "."),
        ),
        _query(
            plan.ns_tld,
            T.NS,
            "udp",
            aa=False,
            authority=zone_answers.rrsets(zone, plan.ns_tld, T.NS)[:1] + ds_authority,
            additional=zone_answers.glue(zone, plan.ns_tld),
        ),
        _query(plan.ds_tld, T.DS, "udp", answer=zone_answers.rrsets(zone, plan.ds_tld, T.DS)),
        _query(
            negative,
            T.A,
            "udp",
            rcode=dns.rcode.NXDOMAIN,
            authority=zone_answers.rrsets(zone, ".", T.SOA)
            + zone_answers.rrsets(zone, nsec, T.NSEC)
            + zone_answers.rrsets(zone, ".", T.NSEC),
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument(
        "--zone", default=str(REPO.parent / "shared" / "data" / "root" / "dns_audit" / "root.zone")
    )
    args = parser.parse_args()
    text = pathlib.Path(args.zone).read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(pathlib.Path(tmp) / "bench.sqlite")
        rootzone.store_zone(store, text, source=args.zone)  # parsed once, kept in memory
        zone = rootzone.load_zone(store, store.root_zones()[0])
        assert zone is not None
        rounds = [_queries(zone, f"round-{i}") for i in range(20)]
        batch = []
        for i in range(args.records):
            letter = "abcdefghijklm"[i % 13]
            batch.append(
                make_record(
                    kind="root-dns",
                    probe=ProbeRef(id=f"p{i // 26}", asn=64500 + i % 7, country="NL"),
                    target=RootTarget(letter, f"{letter}.root-servers.net.", "192.0.2.1", "ipv4"),
                    result=RootResult(
                        queries=tuple(rounds[(i // 13) % len(rounds)]),
                        identity=SiteIdentity(),
                        integrity=Integrity(outcome="iana", validated_at="2023-05-11T12:00:00Z"),
                    ),
                    started=WHEN + dt.timedelta(seconds=i % 600),
                    finished=WHEN + dt.timedelta(seconds=i % 600 + 1),
                )
            )
        store.put_records(batch)
        since, until = WHEN.timestamp(), WHEN.timestamp() + 900
        t0 = time.perf_counter()
        judged = 0
        for _ in range(args.records // correctness.BATCH_RECORDS + 2):
            n = correctness.judge_pending(store, since=since, until=until)
            judged += n
            if not n:
                break
        judging = time.perf_counter() - t0
        t1 = time.perf_counter()
        correctness.figures(store, since=since, until=until)
        refresh = time.perf_counter() - t1
        ratio, counts = correctness.correctness(store, since=since, until=until)
        store.close()
    answers = int(sum(counts.values()))
    assert judged == args.records and answers == 7 * args.records, (judged, answers)
    assert all(v == 1.0 for v in ratio.values()), ratio
    print(f"records judged          {judged}")
    print(f"answers judged          {answers} (all correct)")
    print(f"judging                 {judging:.3f} s  ({judging / answers * 1e6:.0f} µs an answer)")
    print(f"refresh after judging   {refresh * 1000:.1f} ms")
    print(f"ratio refresh/judging   {refresh / judging:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
