"""Root integrity against real, archived IANA root zones (validated at their signing time)."""

from __future__ import annotations

import datetime as dt
import functools
import pathlib

import dns.message
import dns.name
import dns.rdatatype
import dns.zone
import pytest
from publiccore.probes import dnssec

from publiccore.errors import InputError


@functools.cache
def _zone(path: pathlib.Path) -> dns.zone.Zone:
    return dns.zone.from_file(str(path), origin=dns.name.root, relativize=False)


def _answer(
    zone: dns.zone.Zone, rdtype: dns.rdatatype.RdataType, *, signed: bool = True
) -> dns.message.Message:
    query = dns.message.make_query(".", rdtype, want_dnssec=True)
    response = dns.message.make_response(query)
    node = zone.get_node(dns.name.root)
    rdataset = node.get_rdataset(1, rdtype)
    response.answer.append(dns.rrset.from_rdata_list(dns.name.root, rdataset.ttl, list(rdataset)))
    sigs = node.get_rdataset(1, dns.rdatatype.RRSIG, rdtype)
    if signed and sigs is not None:
        response.answer.append(dns.rrset.from_rdata_list(dns.name.root, sigs.ttl, list(sigs)))
    return response


@pytest.fixture(scope="module")
def zone_2023(shared_data: pathlib.Path) -> dns.zone.Zone:
    return _zone(shared_data / "root" / "dns_audit" / "root.zone")


@pytest.fixture(scope="module")
def zone_2014(shared_data: pathlib.Path) -> dns.zone.Zone:
    return _zone(shared_data / "root" / "dns-root-data" / "root.zone")


SIGNED_2023 = dt.datetime(2023, 5, 11, 12, 0, tzinfo=dt.UTC)
SIGNED_2014 = dt.datetime(2014, 6, 26, 12, 0, tzinfo=dt.UTC)
TODAY = dt.datetime(2026, 11, 29, tzinfo=dt.UTC)


def test_bundled_anchors_hold_ksk_2017_and_2024() -> None:
    tags = {a.key_tag for a in dnssec.load_anchors()}
    assert {20326, 38696} <= tags


def test_real_2023_zone_is_iana_at_signing_time(zone_2023: dns.zone.Zone) -> None:
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY),
        _answer(zone_2023, dns.rdatatype.SOA),
        dnssec.load_anchors(),
        SIGNED_2023,
    )
    assert result.outcome == "iana", result.reason
    assert 20326 in result.key_tags
    assert result.validated_at == "2023-05-11T12:00:00.000000Z"


def test_real_2023_zone_is_bogus_expired_today(zone_2023: dns.zone.Zone) -> None:
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY),
        _answer(zone_2023, dns.rdatatype.SOA),
        dnssec.load_anchors(),
        TODAY,
    )
    assert result.outcome == "bogus"
    assert "expired" in (result.reason or "")


def test_real_2023_zone_is_not_yet_valid_before_inception(zone_2023: dns.zone.Zone) -> None:
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY),
        None,
        dnssec.load_anchors(),
        dt.datetime(2023, 1, 1, tzinfo=dt.UTC),
    )
    assert result.outcome == "bogus"
    assert "not yet valid" in (result.reason or "")


def test_ksk_2010_zone_is_iana_in_2014_under_the_2010_anchor(zone_2014: dns.zone.Zone) -> None:
    result = dnssec.validate_root(
        _answer(zone_2014, dns.rdatatype.DNSKEY),
        _answer(zone_2014, dns.rdatatype.SOA),
        dnssec.load_anchors(),
        SIGNED_2014,
    )
    assert result.outcome == "iana", result.reason


def test_2023_zone_without_iana_anchor_is_alternate(
    zone_2023: dns.zone.Zone, shared_data: pathlib.Path
) -> None:
    # KSK-2010 only: the 2023 zone is validly self-signed but not by that anchor.
    only_2010 = dnssec.load_anchors(shared_data / "root" / "dns-root-data" / "root-anchors.xml")
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY),
        _answer(zone_2023, dns.rdatatype.SOA),
        only_2010,
        SIGNED_2023,
    )
    assert result.outcome == "alternate"
    assert "20326" in (result.reason or "")


def test_stripped_signatures_are_unsigned(zone_2023: dns.zone.Zone) -> None:
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY, signed=False),
        _answer(zone_2023, dns.rdatatype.SOA, signed=False),
        dnssec.load_anchors(),
        SIGNED_2023,
    )
    assert result.outcome == "unsigned"


def test_tampered_soa_signature_is_bogus(zone_2023: dns.zone.Zone) -> None:
    soa = _answer(zone_2023, dns.rdatatype.SOA)
    original = soa.answer[0][0]
    soa.answer[0] = dns.rrset.from_rdata(
        dns.name.root, soa.answer[0].ttl, original.replace(serial=original.serial + 1)
    )
    result = dnssec.validate_root(
        _answer(zone_2023, dns.rdatatype.DNSKEY), soa, dnssec.load_anchors(), SIGNED_2023
    )
    assert result.outcome == "bogus"
    assert "signature invalid" in (result.reason or "")


def test_nothing_answered_is_no_answer() -> None:
    result = dnssec.validate_root(None, None, dnssec.load_anchors(), TODAY)
    assert result.outcome == "no-answer"


@pytest.mark.parametrize(
    "name",
    [
        "trust-anchors/root-anchors.xml",
        "trust-anchors/dnssec_ta_tool/regress/root-anchors.xml",
        "technitium/root-anchors.xml",
        "root-metrics/root-ds.txt",
    ],
)
def test_real_anchor_files_load(shared_data: pathlib.Path, name: str) -> None:
    anchors = dnssec.load_anchors(shared_data / "root" / name)
    assert any(a.key_tag in (20326, 38696) for a in anchors)


def test_bad_anchor_files_give_clear_errors(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<TrustAnchor><Zone>.</Zone><KeyDigest")
    with pytest.raises(InputError, match="not valid XML"):
        dnssec.load_anchors(bad)
    with pytest.raises(InputError, match="cannot read"):
        dnssec.load_anchors(tmp_path / "missing.xml")
    empty = tmp_path / "empty.txt"
    empty.write_text("; nothing\n")
    with pytest.raises(InputError, match="no root key digest"):
        dnssec.load_anchors(empty)
