"""The IANA root trust anchors: reading them (IANA XML or DS lines) and matching DNSKEYs.

Shared by the probe's integrity check (``probes.dnssec``) and the collector's correctness judge
(``collectors.derive.correctness``); no network code.
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
import dns.name
import dns.rdtypes.ANY.DNSKEY

from publiccore.clock import parse_rfc3339
from publiccore.errors import InputError

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
