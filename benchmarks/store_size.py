"""Bytes per stored root-dns record: the canonical JSON vs ``publiccore.store.compact``.

    python benchmarks/store_size.py [--probes 10] [--rounds 96] [--rounds-per-serial 24]

Builds lab-like ``root-dns`` records: every probe measures the 13 letters over IPv4 and IPv6
each round (five queries a record: ``. SOA`` over UDP and TCP, ``hostname.bind`` and
``id.server`` CH TXT, ``. DNSKEY``), with the wire answers of the lab's signed root
(tests/fixtures/records/v1/root-dns-lab.jsonl) re-rendered by dnspython per answer: a fresh DNS
ID each time; the site's NSID and host name (each probe reaches one of a few anycast sites per
letter and family, another one now and then); a new SOA serial and fresh RRSIG signatures every
``--rounds-per-serial`` rounds; a few timeouts. RTTs vary per query. Prints bytes per record
raw, plain zstd of the whole body (the baseline), packed (the per-record blob, plus its share
of the distinct answers stored once) and pack/unpack CPU µs per record, and checks that every
record unpacks byte for byte. Target: ≤ 1.5 KB per root-dns record.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import functools
import json
import pathlib
import random
import sys
import time
import zlib
from collections.abc import Iterator

import dns.edns
import dns.message
import dns.rdatatype
import dns.rrset
import zstandard

from publiccore import records as rec
from publiccore.clock import to_rfc3339
from publiccore.store import compact

FIXTURE = (
    pathlib.Path(__file__).resolve().parents[1]
    / "tests"
    / "fixtures"
    / "records"
    / "v1"
    / "root-dns-lab.jsonl"
)
LETTERS = "abcdefghijklm"
SITES = ("ams", "fra", "lhr", "cdg", "iad", "lax", "nrt", "sin", "gru", "jnb", "syd", "ord")
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _templates() -> dict[tuple[str, str, str], bytes]:
    """The lab letter's wire answers, by (qname, qtype, transport)."""
    first = json.loads(FIXTURE.read_text().splitlines()[0])
    return {
        (q["qname"], q["qtype"], q["transport"]): base64.b64decode(q["wire_b64"])
        for q in first["result"]["queries"]
    }


@functools.lru_cache(maxsize=65536)
def _render(
    template: bytes, *, nsid: bytes, host: bytes, serial: int, resigned: int | None
) -> bytes:
    """``template`` as a site answers it (DNS ID 0): its NSID and TXT host, the SOA serial,
    and when ``resigned`` is not None, RRSIG signatures drawn from that seed.

    Rendered in the order given (no RRset shuffling), as NSD and Knot answer.
    """
    message = dns.message.from_wire(template)
    message.id = 0
    message.use_edns(0, payload=message.payload, options=[dns.edns.NSIDOption(nsid)])
    signatures = random.Random(resigned) if resigned is not None else None
    for section in message.sections[1:]:  # not the question
        for index, rrset in enumerate(section):
            rdatas = list(rrset)
            if rrset.rdtype == dns.rdatatype.SOA:
                rdatas = [r.replace(serial=serial) for r in rdatas]
            elif rrset.rdtype == dns.rdatatype.RRSIG and signatures is not None:
                rdatas = [
                    r.replace(signature=signatures.randbytes(len(r.signature))) for r in rdatas
                ]
            elif rrset.rdtype == dns.rdatatype.TXT:
                rdatas = [r.replace(strings=(host,)) for r in rdatas]
            else:
                continue
            section[index] = dns.rrset.from_rdata_list(rrset.name, rrset.ttl, rdatas)
    return message.to_wire(max_size=65535, want_shuffle=False)


def lab_like_records(
    *, probes: int, rounds: int, rounds_per_serial: int = 24, seed: int = 1
) -> Iterator[rec.Record]:
    """Yield ``probes × rounds × 26`` lab-like root-dns records, round by round."""
    rng = random.Random(seed)
    templates = _templates()
    probe_refs = [
        rec.ProbeRef(id=f"p{n:04d}", asn=64500 + n % 7, country=("NL", "DE", "BR", "JP")[n % 4])
        for n in range(probes)
    ]
    # Each probe reaches one usual site per letter and family, a second one now and then.
    usual = {
        (p, letter, family): rng.sample(SITES, 2)
        for p in range(probes)
        for letter in LETTERS
        for family in ("ipv4", "ipv6")
    }
    for round_no in range(rounds):
        serial_no = round_no // rounds_per_serial
        serial = 2026110100 + serial_no
        started = START + dt.timedelta(minutes=5 * round_no)
        for p, probe in enumerate(probe_refs):
            for letter in LETTERS:
                for family in ("ipv4", "ipv6"):
                    sites = usual[(p, letter, family)]
                    site = sites[0] if rng.random() < 0.9 else sites[1]
                    yield _record(
                        templates,
                        rng=rng,
                        probe=probe,
                        letter=letter,
                        family=family,
                        site=site,
                        serial=serial,
                        serial_no=serial_no,
                        started=started,
                    )


def _record(
    templates: dict[tuple[str, str, str], bytes],
    *,
    rng: random.Random,
    probe: rec.ProbeRef,
    letter: str,
    family: rec.Family,
    site: str,
    serial: int,
    serial_no: int,
    started: dt.datetime,
) -> rec.Record:
    nsid = f"{site}1.{letter}.root".encode()
    host = f"{letter}-{site}-1".encode()
    queries = []
    for (qname, qtype, transport), template in templates.items():
        if rng.random() < 0.02:
            queries.append(
                rec.DnsQuery(
                    qname=qname,
                    qclass="CH" if qtype == "TXT" else "IN",
                    qtype=qtype,
                    transport=transport,  # type: ignore[arg-type]
                    failure="dns_timeout",
                )
            )
            continue
        # The signatures are the same for everyone during a serial (and the DNSKEY set's for
        # the whole run): seed them from the serial, not from the record.
        wire = _render(
            template,
            nsid=nsid,
            host=host,
            serial=serial,
            resigned=serial_no if qtype == "SOA" else None,
        )
        wire = rng.randrange(65536).to_bytes(2, "big") + wire[2:]  # a fresh DNS ID
        queries.append(
            rec.DnsQuery(
                qname=qname,
                qclass="CH" if qtype == "TXT" else "IN",
                qtype=qtype,
                transport=transport,  # type: ignore[arg-type]
                rcode="NOERROR",
                aa=True,
                tc=False,
                rtt_seconds=round(rng.uniform(0.002, 0.3), 6),
                serial=serial if qtype == "SOA" else None,
                nsid_hex=nsid.hex(),
                nsid_text=nsid.decode(),
                size_bytes=len(wire),
                wire_b64=base64.b64encode(wire).decode("ascii"),
            )
        )
    number = LETTERS.index(letter) + 1
    target = rec.RootTarget(
        letter=letter,
        name=f"{letter}.root-servers.net.",
        address=f"192.0.2.{number}" if family == "ipv4" else f"2001:db8::{number}",
        family=family,
    )
    finished = started + dt.timedelta(seconds=rng.uniform(0.05, 0.6))
    result = rec.RootResult(
        queries=tuple(queries),
        identity=rec.SiteIdentity(
            nsid=nsid.decode(), hostname_bind=host.decode(), id_server=host.decode()
        ),
        integrity=rec.Integrity(
            outcome="iana",
            key_tags=(20326, 60955),
            validated_at=to_rfc3339(finished),
        ),
        consistency=rec.Consistency(status="consistent"),
    )
    return rec.make_record(
        kind="root-dns",
        probe=probe,
        target=target,
        result=result,
        started=started,
        finished=finished,
        record_id=rec.uuid7(int(started.timestamp() * 1e9) + rng.randrange(10**6)),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probes", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=96, help="5-minute rounds (96 = 8 hours)")
    parser.add_argument("--rounds-per-serial", type=int, default=24)
    args = parser.parse_args()
    bodies = [
        r.dumps()
        for r in lab_like_records(
            probes=args.probes, rounds=args.rounds, rounds_per_serial=args.rounds_per_serial
        )
    ]
    n = len(bodies)
    raw = sum(len(b) for b in bodies)
    plain = zstandard.ZstdCompressor(level=compact.LEVEL)
    zstd_whole = sum(len(plain.compress(b.encode())) for b in bodies)
    zlib_whole = sum(len(zlib.compress(b.encode(), 6)) for b in bodies)

    # CPU time of this process: the machine may be busy with other work.
    begin = time.process_time()
    packed = [compact.pack(b, "root-dns") for b in bodies]
    pack_s = time.process_time() - begin
    answers: dict[str, bytes] = {}
    for p in packed:
        for key, blob in p.answers:
            answers.setdefault(key, blob)
    begin = time.process_time()
    out = [compact.unpack(p.blob, answers) for p in packed]
    unpack_s = time.process_time() - begin
    if out != bodies:
        print("FAIL: a record did not unpack byte for byte", file=sys.stderr)
        return 1
    blobs = sum(len(p.blob) for p in packed)
    answer_bytes = sum(len(a) for a in answers.values())
    per_record = (blobs + answer_bytes) / n
    print(
        f"{n} root-dns records ({args.probes} probes × {args.rounds} rounds × 26), "
        f"{len(answers)} distinct answers"
    )
    print(f"raw canonical JSON     {raw / n:8.0f} B/record")
    print(f"zlib -6 of each body   {zlib_whole / n:8.0f} B/record  (baseline)")
    print(f"zstd -{compact.LEVEL} of each body   {zstd_whole / n:8.0f} B/record  (baseline)")
    print(
        f"packed                 {per_record:8.0f} B/record  = blob {blobs / n:.0f}"
        f" + answers' share {answer_bytes / n:.0f}"
    )
    print(f"ratio raw / packed     {raw / (blobs + answer_bytes):8.1f}×")
    print(f"ratio zstd / packed    {zstd_whole / (blobs + answer_bytes):8.1f}×")
    print(f"pack   {pack_s / n * 1e6:6.1f} µs/record (CPU)")
    print(f"unpack {unpack_s / n * 1e6:6.1f} µs/record (CPU)")
    target = per_record <= 1536
    print(f"target ≤ 1.5 KB/record: {'met' if target else 'NOT met'}")
    return 0 if target else 1


if __name__ == "__main__":
    sys.exit(main())
