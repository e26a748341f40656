"""RIPE Atlas probe metadata: country and ASNs per probe id (never the probe's address).

From the Atlas ``/api/v2/probes/`` JSON (``{"results": [...]}``, one page or several), its daily
archive (``{"objects": [...]}`` or a bare list; plain, gzip or bzip2), or a file that nests one of
those under ``"probes"`` (as ripe-atlas-monitor writes it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from publiccore.collectors.atlas import files

from publiccore.errors import InputError

_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclasses.dataclass(frozen=True, slots=True)
class ProbeInfo:
    """What publiccore keeps of an Atlas probe: its registered country and ASNs."""

    id: int
    country: str | None = None
    asn_v4: int | None = None
    asn_v6: int | None = None

    def asn(self, family: str) -> int | None:
        """The probe's ASN for the family of a measurement (``ipv4`` or ``ipv6``)."""
        return self.asn_v4 if family == "ipv4" else self.asn_v6


def _asn(value: Any) -> int | None:
    return value if type(value) is int and 0 < value < 2**32 else None


def probe_info(obj: Mapping[str, Any]) -> ProbeInfo | None:
    """One probe object of the Atlas API → ProbeInfo; None when it has no integer id."""
    probe_id = obj.get("id")
    if type(probe_id) is not int:
        return None
    country = obj.get("country_code")
    country = country.upper() if isinstance(country, str) else None
    return ProbeInfo(
        id=probe_id,
        country=country if country and _COUNTRY.fullmatch(country) else None,
        asn_v4=_asn(obj.get("asn_v4")),
        asn_v6=_asn(obj.get("asn_v6")),
    )


def probe_objects(doc: Any) -> list[Mapping[str, Any]]:
    """The probe objects in any of the accepted shapes (empty when there are none)."""
    if isinstance(doc, Mapping):
        for key in ("probes", "objects", "results"):
            if key in doc:
                return probe_objects(doc[key])
        return [doc] if "id" in doc else []
    if isinstance(doc, list):
        return [p for p in doc if isinstance(p, Mapping)]
    return []


def table(objects: Iterable[Mapping[str, Any]]) -> dict[int, ProbeInfo]:
    """Probe id → ProbeInfo (a later object for the same id wins)."""
    out: dict[int, ProbeInfo] = {}
    for obj in objects:
        info = probe_info(obj)
        if info is not None:
            out[info.id] = info
    return out


def load(path: str | os.PathLike[str]) -> dict[int, ProbeInfo]:
    """Read a probe file (see the module doc); raise InputError when it holds no probe."""
    try:
        with files.open_input(pathlib.Path(path)) as stream:
            data = stream.read()
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise InputError(f"cannot read probe file {path}: {exc}") from None
    try:
        objects = probe_objects(json.loads(data))
    except ValueError:
        objects = []
        for number, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                objects.extend(probe_objects(json.loads(line)))
            except ValueError:
                raise InputError(f"probe file {path}: line {number}: not JSON") from None
    probes = table(objects)
    if not probes:
        raise InputError(f"probe file {path} holds no probe objects")
    return probes
