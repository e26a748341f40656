"""Root zones for the DNS lab: the real signed IANA zone, a lab-signed one, an unsigned one.

``iana`` is the real signed root zone (serial ``IANA_SERIAL``, KSK 20326) from
``shared/data/root/dns_audit/root.zone``; ``iana-other-serial`` the same file with only
the SOA serial changed (so its SOA RRSIG is bogus); ``iana-wrong-delegation`` the same file with
every TLD's NS set pointing at other (hijacked) name servers; ``iana-no-nsec`` the same file
without its NSEC records (and their RRSIGs), so negative answers carry no denial proof;
``alternate`` a small zone naming the
lab servers, signed with freshly generated keys (ldns-keygen, ldns-signzone) and
published as an IANA-style root-anchors.xml; ``unsigned`` the same small zone unsigned.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .netns import LabError

HERE = Path(__file__).resolve().parent

IANA_SERIAL = 2023051100
IANA_OTHER_SERIAL = 2023051000  # one day "behind": a lagging instance
IANA_KSK_TAG = 20326
IANA_ZSK_TAG = 60955


class ZoneServer(Protocol):
    """What the zones need to know of a lab server."""

    @property
    def name(self) -> str: ...
    @property
    def ipv4(self) -> str: ...
    @property
    def ipv6(self) -> str: ...
    @property
    def zone(self) -> str: ...


def root_data_dir() -> Path | None:
    """``shared/data/root``: $PUBLICCORE_ROOT_DATA, else beside the repo, else /work/shared."""
    cands = []
    if env := os.environ.get("PUBLICCORE_ROOT_DATA"):
        cands.append(Path(env))
    cands += [HERE.parents[2] / "shared" / "data" / "root", Path("/work/shared/data/root")]
    for c in cands:
        if (c / "dns_audit" / "root.zone").is_file():
            return c
    return None


def small_zone(servers: Sequence[ZoneServer], serial: int) -> str:
    """A small root zone naming ``servers`` (and one unsigned delegation), unsigned."""
    first = servers[0].name
    lines = [
        "$ORIGIN .",
        "$TTL 86400",
        f".\t86400\tIN\tSOA\t{first} nstld.root-servers.test. {serial} 1800 900 604800 86400",
    ]
    lines += [f".\t518400\tIN\tNS\t{s.name}" for s in servers]
    for s in servers:
        lines.append(f"{s.name}\t518400\tIN\tA\t{s.ipv4}")
        lines.append(f"{s.name}\t518400\tIN\tAAAA\t{s.ipv6}")
    # one unsigned delegation so NSEC/denial paths exist (data only, never routed)
    lines += [
        "example.\t172800\tIN\tNS\tns1.example.",
        "ns1.example.\t172800\tIN\tA\t203.0.113.254",
        "ns1.example.\t172800\tIN\tAAAA\t2001:db8:ffff::53",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class ZoneInfo:
    """The zone files made (by zone kind) and, for ``alternate``, its anchor and key."""

    paths: dict[str, Path] = field(default_factory=dict)
    anchor_path: Path | None = None
    ds: str = ""
    ksk_tag: int | None = None
    algorithm: int | None = None


def prepare_zones(
    servers: Sequence[ZoneServer],
    zdir: Path,
    root_data: Path | None,
    alternate_serial: int,
    algorithm: int,
) -> ZoneInfo:
    """Write (or point at) every zone ``servers`` serve, signing ``alternate`` with fresh keys."""
    zdir.mkdir(parents=True, exist_ok=True)
    needed = {s.zone for s in servers if s.zone}
    info = ZoneInfo()
    if needed & {"iana", "iana-other-serial"}:
        assert root_data is not None
        iana = root_data / "dns_audit" / "root.zone"
        info.paths["iana"] = iana
        if "iana-other-serial" in needed:
            dst = zdir / "iana-other-serial.zone"
            with iana.open("rb") as fin, dst.open("wb") as fout:
                first = fin.readline().decode()
                new, n = re.subn(
                    rf"(\sSOA\s+\S+\s+\S+\s+){IANA_SERIAL}(\s)",
                    rf"\g<1>{IANA_OTHER_SERIAL}\g<2>",
                    first,
                    count=1,
                )
                if n != 1:
                    raise LabError(f"could not find the SOA serial on the first line of {iana}")
                fout.write(new.encode())
                shutil.copyfileobj(fin, fout, 1 << 20)
            info.paths["iana-other-serial"] = dst
    if "iana-wrong-delegation" in needed:
        assert root_data is not None
        dst = zdir / "iana-wrong-delegation.zone"
        _rewrite(root_data / "dns_audit" / "root.zone", dst, _hijack_delegation)
        info.paths["iana-wrong-delegation"] = dst
    if "iana-no-nsec" in needed:
        assert root_data is not None
        dst = zdir / "iana-no-nsec.zone"
        _rewrite(root_data / "dns_audit" / "root.zone", dst, _drop_nsec)
        info.paths["iana-no-nsec"] = dst
    if needed & {"alternate", "unsigned"}:
        text = small_zone(servers, alternate_serial)
        unsigned = zdir / "unsigned.zone"
        unsigned.write_text(text)
        info.paths["unsigned"] = unsigned
        if "alternate" in needed:
            sign_alternate(unsigned, zdir, algorithm, info)
    return info


def _rewrite(src: Path, dst: Path, change: Callable[[list[str]], list[str] | None]) -> None:
    """Copy a zone file (one record a line) with ``change`` applied to each record's
    whitespace-separated fields (None drops the record)."""
    out = []
    for line in src.read_text(encoding="ascii").splitlines():
        fields = line.split()
        if len(fields) < 5 or line.startswith(";"):
            out.append(line)
            continue
        changed = change(fields)
        if changed is not None:
            out.append(line if changed is fields else "\t".join(changed))
    dst.write_text("\n".join(out) + "\n", encoding="ascii")


def _hijack_delegation(fields: list[str]) -> list[str] | None:
    """A TLD's NS record pointing at ``<target label>.hijacked-<tld>.invalid.`` instead."""
    owner, rtype = fields[0], fields[3]
    if rtype != "NS" or owner == "." or owner.count(".") != 1:
        return fields
    label = fields[4].split(".", 1)[0]
    return [*fields[:4], f"{label}.hijacked-{owner.rstrip('.')}.invalid."]


def _drop_nsec(fields: list[str]) -> list[str] | None:
    """No NSEC record and no RRSIG over one."""
    if fields[3] == "NSEC" or (fields[3] == "RRSIG" and fields[4] == "NSEC"):
        return None
    return fields


def sign_alternate(unsigned: Path, zdir: Path, algorithm: int, info: ZoneInfo) -> None:
    """Sign ``unsigned`` with a new KSK and ZSK (ldns); fill ``info`` with the DS and anchor."""
    kdir = zdir / "keys"
    kdir.mkdir(exist_ok=True)
    alg_name = {8: "RSASHA256", 13: "ECDSAP256SHA256", 15: "ED25519"}[algorithm]
    bits = ["-b", "2048"] if algorithm == 8 else []

    def keygen(*extra: str) -> str:
        p = subprocess.run(
            ["ldns-keygen", "-a", alg_name, *bits, *extra, "."],
            cwd=kdir,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if p.returncode != 0:
            raise LabError(f"ldns-keygen failed: {p.stderr}")
        return p.stdout.strip().splitlines()[-1]

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        fk, fz = ex.submit(keygen, "-k"), ex.submit(keygen)
        ksk, zsk = fk.result(), fz.result()
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    inception = now - dt.timedelta(days=1)
    expiration = now + dt.timedelta(days=30)
    signed = zdir / "alternate.zone"
    p = subprocess.run(
        [
            "ldns-signzone",
            "-o",
            ".",
            "-i",
            inception.strftime("%Y%m%d%H%M%S"),
            "-e",
            expiration.strftime("%Y%m%d%H%M%S"),
            "-f",
            str(signed),
            str(unsigned),
            str(kdir / zsk),
            str(kdir / ksk),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if p.returncode != 0 or not signed.is_file():
        raise LabError(f"ldns-signzone failed: {p.stderr}")
    p = subprocess.run(
        ["ldns-key2ds", "-n", "-2", str(kdir / f"{ksk}.key")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if p.returncode != 0:
        raise LabError(f"ldns-key2ds failed: {p.stderr}")
    fields = p.stdout.split()
    tag, alg, dtype, digest = fields[-4:]
    info.paths["alternate"] = signed
    info.ksk_tag = int(tag)
    info.algorithm = int(alg)
    info.ds = f".\t86400\tIN\tDS\t{tag} {alg} {dtype} {digest.upper()}"
    (zdir / "alternate.ds").write_text(info.ds + "\n")
    valid_from = inception.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<TrustAnchor id="{str(uuid.uuid4()).upper()}" source="publiccore-dns-lab">\n'
        "<Zone>.</Zone>\n"
        f'<KeyDigest id="Klab{tag}" validFrom="{valid_from}">\n'
        f"<KeyTag>{tag}</KeyTag>\n"
        f"<Algorithm>{alg}</Algorithm>\n"
        f"<DigestType>{dtype}</DigestType>\n"
        f"<Digest>{digest.upper()}</Digest>\n"
        "</KeyDigest>\n"
        "</TrustAnchor>\n"
    )
    info.anchor_path = zdir / "alternate-root-anchors.xml"
    info.anchor_path.write_text(xml)


def hints_text(servers: Sequence[ZoneServer]) -> str:
    """A named.root-style hints file listing ``servers``."""
    out = [
        ";       publiccore DNS lab root hints (named.root format)",
        ";       documentation addresses only (RFC 5737 / RFC 3849); lab use only",
        ";",
    ]
    for s in servers:
        out.append(f".{' ' * 24}3600000      NS    {s.name}")
        out.append(f"{s.name:<25}3600000      A     {s.ipv4}")
        out.append(f"{s.name:<25}3600000      AAAA  {s.ipv6}")
    out.append("; End of file")
    return "\n".join(out) + "\n"
