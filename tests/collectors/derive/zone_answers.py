"""Answers built from a real root zone, for the correctness tests and benchmarks/correctness.py:
the RRsets (with their signatures) a correct letter would send."""

from __future__ import annotations

import dns.name
import dns.rdataclass
import dns.rdatatype as T
import dns.rrset
from publiccore.collectors import rootzone


def rrsets(zone: rootzone.RootZone, name: str, rdtype: T.RdataType) -> list[dns.rrset.RRset]:
    """The zone's RRset of (name, type) and its RRSIG set when it has one."""
    owner = dns.name.from_text(name)
    data = zone.rdataset(owner, rdtype)
    assert data is not None, (name, rdtype)
    out = [dns.rrset.from_rdata_list(owner, data.ttl, list(data))]
    sigs = zone.rdataset(owner, T.RRSIG, rdtype)
    if sigs is not None:
        out.append(dns.rrset.from_rdata_list(owner, sigs.ttl, list(sigs)))
    return out


def glue(zone: rootzone.RootZone, tld: str) -> list[dns.rrset.RRset]:
    """The A and AAAA glue the zone holds for the name servers of ``tld``."""
    ns = zone.rdataset(dns.name.from_text(tld), T.NS)
    assert ns is not None
    out = []
    for rdata in ns:
        for rdtype in (T.A, T.AAAA):
            data = zone.rdataset(rdata.target, rdtype)
            if data is not None:
                out.append(dns.rrset.from_rdata_list(rdata.target, data.ttl, list(data)))
    return out


def covering_nsec(zone: rootzone.RootZone, name: str) -> str:
    """Owner of the zone's NSEC that covers ``name`` (looked up the slow, obvious way)."""
    target = dns.name.from_text(name)
    for owner, node in zone.zone.nodes.items():
        nsec = node.get_rdataset(dns.rdataclass.IN, T.NSEC)
        if nsec is None:
            continue
        following = nsec[0].next
        if owner < target and (target < following or following == dns.name.root):
            return owner.to_text()
    raise AssertionError(f"no NSEC covers {name}")
