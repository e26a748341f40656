"""Root integrity: validate a root server's DNSKEY set and SOA against the IANA trust anchors.

Outcomes (docs/methodology.md, "Root integrity"):
``iana``      the DNSKEY set holds a key matching a trust anchor valid at the validation time, is
              signed by it, and the SOA RRSIG validates with that set;
``bogus``     an anchored key is present but a signature fails, has expired or is not yet valid
              (``reason`` says which), or an unanchored set does not even sign itself;
``alternate`` the DNSKEY set is validly self-signed by a key that is not an IANA anchor;
``unsigned``  answers without DNSSEC records;
``no-answer`` neither the DNSKEY nor the SOA query got a usable answer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from importlib import resources

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rrset

from publiccore.clock import parse_rfc3339, to_rfc3339
from publiccore.errors import InputError
from publiccore.records import Integrity

_DIGEST_NAMES = {1: "SHA1", 2: "SHA256", 4: "SHA384"}


@dataclasses.dataclass(frozen=True, slots=True)
class TrustAnchor:
    """One root KSK digest as IANA publishes it."""

    key_tag: int
    algorithm: int
    digest_type: int
    digest: bytes
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None

    def valid_at(self, when: dt.datetime) -> bool:
        if self.valid_from is not None and when < self.valid_from:
            return False
        return not (self.valid_until is not None and when >= self.valid_until)


def bundled_anchors_path() -> pathlib.Path:
    """IANA's root-anchors.xml shipped with publiccore (KSK-2010, KSK-2017, KSK-2024)."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "root-anchors.xml"))


def load_anchors(path: str | os.PathLike[str] | None = None) -> list[TrustAnchor]:
    """Read trust anchors from IANA XML or from DS lines (``. DS tag alg type hex``).

    Raises InputError when the file is unreadable or holds no root anchor.
    """
    anchors_path = pathlib.Path(path) if path else bundled_anchors_path()
    try:
        data = anchors_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read trust anchors {anchors_path}: {exc.strerror}") from None
    if data.lstrip().startswith(b"<"):
        anchors = _anchors_from_xml(data, anchors_path)
    else:
        anchors = _anchors_from_ds(data, anchors_path)
    if not anchors:
        raise InputError(f"trust anchors {anchors_path} hold no root key digest")
    return anchors


def _anchors_from_xml(data: bytes, where: pathlib.Path) -> list[TrustAnchor]:
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise InputError(f"trust anchors {where} are not valid XML: {exc}") from None
    zone = (root.findtext("Zone") or "").strip()
    if root.tag != "TrustAnchor" or zone != ".":
        raise InputError(f"trust anchors {where}: expected an IANA <TrustAnchor> for zone '.'")
    anchors: list[TrustAnchor] = []
    for kd in root.iter("KeyDigest"):
        try:
            anchors.append(
                TrustAnchor(
                    key_tag=int(kd.findtext("KeyTag") or ""),
                    algorithm=int(kd.findtext("Algorithm") or ""),
                    digest_type=int(kd.findtext("DigestType") or ""),
                    digest=bytes.fromhex((kd.findtext("Digest") or "").strip()),
                    valid_from=_xml_time(kd.get("validFrom")),
                    valid_until=_xml_time(kd.get("validUntil")),
                )
            )
        except ValueError as exc:
            raise InputError(
                f"trust anchors {where}: bad KeyDigest {kd.get('id')}: {exc}"
            ) from None
    return anchors


def _xml_time(text: str | None) -> dt.datetime | None:
    return parse_rfc3339(text) if text else None


def _anchors_from_ds(data: bytes, where: pathlib.Path) -> list[TrustAnchor]:
    anchors: list[TrustAnchor] = []
    for number, line in enumerate(data.decode("ascii", "replace").splitlines(), 1):
        fields = line.split(";", 1)[0].split()
        if not fields:
            continue
        try:
            i = fields.index("DS")
            tag, alg, dtype = (int(x) for x in fields[i + 1 : i + 4])
            digest = bytes.fromhex("".join(fields[i + 4 :]))
        except ValueError:
            raise InputError(
                f"trust anchors {where}:{number}: expected '. DS tag alg type hex'"
            ) from None
        if fields[0] != ".":
            raise InputError(f"trust anchors {where}:{number}: DS owner is not the root")
        anchors.append(TrustAnchor(key_tag=tag, algorithm=alg, digest_type=dtype, digest=digest))
    return anchors


def _rrsets(
    message: dns.message.Message | None, rdtype: dns.rdatatype.RdataType
) -> tuple[dns.rrset.RRset | None, dns.rrset.RRset | None]:
    """Return the root's RRset of ``rdtype`` in the answer and the RRSIGs covering it."""
    if message is None:
        return None, None
    rrset = sigs = None
    for candidate in message.answer:
        if candidate.name != dns.name.root:
            continue
        if candidate.rdtype == rdtype:
            rrset = candidate
        elif candidate.rdtype == dns.rdatatype.RRSIG and candidate.covers == rdtype:
            sigs = candidate
    return rrset, sigs


Key = dns.rdtypes.ANY.DNSKEY.DNSKEY


def anchored_keys(
    dnskeys: Iterable[Key], anchors: Sequence[TrustAnchor], when: dt.datetime
) -> list[Key]:
    """The DNSKEYs that match a trust anchor valid at ``when`` (by tag, algorithm and digest)."""
    matched = []
    for key in dnskeys:
        tag = dns.dnssec.key_id(key)
        for anchor in anchors:
            if anchor.key_tag != tag or anchor.algorithm != key.algorithm:
                continue
            if not anchor.valid_at(when) or anchor.digest_type not in _DIGEST_NAMES:
                continue
            ds = dns.dnssec.make_ds(dns.name.root, key, _DIGEST_NAMES[anchor.digest_type])
            if ds.digest == anchor.digest:
                matched.append(key)
                break
    return matched


def _check_signatures(
    rrset: dns.rrset.RRset, sigs: dns.rrset.RRset | None, keys: Sequence[Key], when: dt.datetime
) -> str | None:
    """Return None when some RRSIG by one of ``keys`` validates at ``when``, else why not."""
    if sigs is None or len(sigs) == 0:
        return f"no RRSIG over the {dns.rdatatype.to_text(rrset.rdtype)} set"
    key_tags = {dns.dnssec.key_id(k) for k in keys}
    keyset = dns.rdataset.from_rdata_list(
        rrset.ttl if rrset.rdtype == dns.rdatatype.DNSKEY else 0, list(keys)
    )
    now = when.timestamp()
    reasons: list[str] = []
    for sig in sigs:
        label = f"{dns.rdatatype.to_text(rrset.rdtype)} RRSIG by {sig.key_tag}"
        if sig.key_tag not in key_tags:
            reasons.append(f"{label}: no such key")
            continue
        if now > sig.expiration:
            expired = dt.datetime.fromtimestamp(sig.expiration, dt.UTC)
            reasons.append(f"{label}: signature expired {to_rfc3339(expired)}")
            continue
        if now < sig.inception:
            incepted = dt.datetime.fromtimestamp(sig.inception, dt.UTC)
            reasons.append(f"{label}: signature not yet valid (inception {to_rfc3339(incepted)})")
            continue
        try:
            dns.dnssec.validate_rrsig(rrset, sig, {dns.name.root: keyset}, now=now)
        except dns.dnssec.ValidationFailure as exc:
            reasons.append(f"{label}: signature invalid ({exc})")
            continue
        except dns.exception.UnsupportedAlgorithm:
            reasons.append(f"{label}: unsupported algorithm {sig.algorithm}")
            continue
        return None
    return "; ".join(reasons)


def validate_root(
    dnskey_answer: dns.message.Message | None,
    soa_answer: dns.message.Message | None,
    anchors: Sequence[TrustAnchor],
    when: dt.datetime,
) -> Integrity:
    """Classify the integrity of one root server's answers at time ``when``."""
    validated_at = to_rfc3339(when)
    dnskeys, dnskey_sigs = _rrsets(dnskey_answer, dns.rdatatype.DNSKEY)
    soa, soa_sigs = _rrsets(soa_answer, dns.rdatatype.SOA)
    if dnskeys is None and soa is None:
        return Integrity(
            outcome="no-answer", reason="no DNSKEY or SOA answer", validated_at=validated_at
        )
    if dnskeys is None:
        if soa_sigs:
            return Integrity(
                outcome="bogus",
                reason="SOA signed, but no DNSKEY set answered",
                validated_at=validated_at,
            )
        return Integrity(
            outcome="unsigned", reason="SOA answered without DNSKEY set", validated_at=validated_at
        )
    tags = tuple(sorted(dns.dnssec.key_id(k) for k in dnskeys))
    if not dnskey_sigs:
        return Integrity(
            outcome="unsigned",
            reason="DNSKEY set without RRSIG",
            key_tags=tags,
            validated_at=validated_at,
        )
    keys: list[Key] = list(dnskeys)
    trusted = anchored_keys(keys, anchors, when)
    if trusted:
        failure = _check_signatures(dnskeys, dnskey_sigs, trusted, when)
        if failure is None and soa is not None:
            failure = _check_signatures(soa, soa_sigs, keys, when)
        if failure is not None:
            return Integrity(
                outcome="bogus", reason=failure, key_tags=tags, validated_at=validated_at
            )
        note = None if soa is not None else "SOA not answered; DNSKEY set validated only"
        return Integrity(outcome="iana", reason=note, key_tags=tags, validated_at=validated_at)
    self_signed = _check_signatures(dnskeys, dnskey_sigs, keys, when)
    if self_signed is None and soa is not None:
        self_signed = _check_signatures(soa, soa_sigs, keys, when)
    signers = sorted({sig.key_tag for sig in dnskey_sigs})
    if self_signed is None:
        return Integrity(
            outcome="alternate",
            key_tags=tags,
            validated_at=validated_at,
            reason="DNSKEY set validly signed by key tag(s) "
            f"{', '.join(map(str, signers))}, none of them an IANA trust anchor",
        )
    return Integrity(
        outcome="bogus",
        key_tags=tags,
        validated_at=validated_at,
        reason=f"no key matches a trust anchor, and {self_signed}",
    )
