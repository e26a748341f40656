"""AS path cleaning: the path as a plain AS sequence that transit analysis can walk.

Prepending is collapsed, AS_SETs (``{…}``) and private/reserved ASNs are dropped. The IANA
documentation ASNs (RFC 5398) are reserved too, but labs (and their tests) use them, so they can be
kept with ``keep_documentation=True``.
"""

from __future__ import annotations

import functools

# (first, last) inclusive ranges that never identify a public network (IANA special registry).
DOCUMENTATION_ASNS: tuple[tuple[int, int], ...] = ((64496, 64511), (65536, 65551))
RESERVED_ASNS: tuple[tuple[int, int], ...] = (
    (0, 0),  # RFC 7607
    (23456, 23456),  # AS_TRANS, RFC 6793
    (64512, 65534),  # private use, RFC 6996
    (65535, 65535),  # RFC 7300
    (65552, 131071),  # reserved
    (4200000000, 4294967294),  # private use, RFC 6996
    (4294967295, 4294967295),  # RFC 7300
)


def is_documentation_asn(asn: int) -> bool:
    """True for the RFC 5398 documentation ASNs (64496–64511, 65536–65551)."""
    return any(low <= asn <= high for low, high in DOCUMENTATION_ASNS)


def is_reserved_asn(asn: int, *, keep_documentation: bool = False) -> bool:
    """True for private-use and reserved ASNs (and documentation ones unless kept)."""
    if (0 < asn < 64496 and asn != 23456) or 131071 < asn < 4200000000:
        return False  # the common case, decided without the tables
    if any(low <= asn <= high for low, high in RESERVED_ASNS):
        return True
    return not keep_documentation and is_documentation_asn(asn)


def clean_path(as_path: str, *, keep_documentation: bool = False) -> tuple[int, ...]:
    """Parse an AS path text into a cleaned AS sequence, peer first, origin last.

    Collapses prepending (``1 2 2 3`` → ``1 2 3``), drops AS_SET / AS_CONFED_SET segments
    (``{…}``, ``[…]``, ``(…)``) and private/reserved ASNs, and collapses repeats left by the
    drops. Unparsable tokens are dropped as well.
    """
    return _clean_cached(as_path, keep_documentation)


@functools.lru_cache(maxsize=1 << 18)
def _clean_cached(as_path: str, keep_documentation: bool) -> tuple[int, ...]:
    out: list[int] = []
    in_set = False
    for token in as_path.split():
        if in_set or token[0] in "{[(":
            in_set = token[-1] not in "}])"
            continue
        try:
            if "." in token:
                high, low = token.split(".", 1)
                asn = int(high) * 65536 + int(low)
            else:
                asn = int(token)
        except ValueError:
            continue
        if is_reserved_asn(asn, keep_documentation=keep_documentation):
            continue
        if out and out[-1] == asn:
            continue
        out.append(asn)
    return tuple(out)


def origin_of(as_path: str, *, keep_documentation: bool = False) -> int | None:
    """The origin AS (last AS of the cleaned path), or None when nothing public is left."""
    cleaned = clean_path(as_path, keep_documentation=keep_documentation)
    return cleaned[-1] if cleaned else None
