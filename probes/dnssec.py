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

import datetime as dt
from collections.abc import Sequence

import dns.dnssec
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rdtypes.ANY.DNSKEY
import dns.rrset

from publiccore.anchors import (  # re-exported: the probe's anchor API
    Key,
    TrustAnchor,
    anchored_keys,
    bundled_anchors_path,
    load_anchors,
)
from publiccore.clock import to_rfc3339
from publiccore.records import Integrity

__all__ = [
    "Key",
    "TrustAnchor",
    "anchored_keys",
    "bundled_anchors_path",
    "load_anchors",
    "validate_root",
]


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
