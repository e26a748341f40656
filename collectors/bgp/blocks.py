"""Address blocks as integer intervals: /24 and /48 equivalents, unions and exclusive sizes.

CIDR blocks are either nested or disjoint, so a sort by (start, size descending) and a stack give
the union (more-specifics counted once) and each block's space not covered by a more-specific.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence

from publiccore.collectors.bgp.rib import Family

UNIT_BITS: dict[Family, int] = {"ipv4": 8, "ipv6": 80}  # /24 = 2^8 addresses, /48 = 2^80
WIDTH: dict[Family, int] = {"ipv4": 32, "ipv6": 128}


def block(prefix: str) -> tuple[Family, int, int]:
    """(family, first address as int, number of addresses) of a CIDR prefix; ValueError if bad."""
    address, _, length_text = prefix.partition("/")
    if ":" in address:
        family: Family = "ipv6"
        raw = socket.inet_pton(socket.AF_INET6, address)
    else:
        family = "ipv4"
        raw = socket.inet_aton(address) if address.count(".") == 3 else b""
        if len(raw) != 4:
            raise ValueError(f"bad IPv4 prefix {prefix!r}")
    width = WIDTH[family]
    length = int(length_text) if length_text else width
    if not 0 <= length <= width:
        raise ValueError(f"bad prefix length in {prefix!r}")
    size = 1 << (width - length)
    start = int.from_bytes(raw, "big") & ~(size - 1)
    return family, start, size


def units(addresses: int, family: Family) -> float:
    """Addresses as /24 (IPv4) or /48 (IPv6) equivalents."""
    return addresses / (1 << UNIT_BITS[family])


def union_size(blocks: Iterable[tuple[int, int]]) -> int:
    """Addresses covered by (start, size) CIDR blocks, overlaps counted once."""
    total = 0
    end = -1
    for start, size in sorted(blocks, key=lambda b: (b[0], -b[1])):
        if start + size - 1 <= end:
            continue  # inside the block already counted
        total += size
        end = start + size - 1
    return total


def exclusive_sizes(blocks: Sequence[tuple[int, int]]) -> list[int]:
    """For each (start, size) CIDR block, the addresses not covered by a more-specific in the list.

    This is the space a router forwards along that block's route (longest match). Duplicate
    blocks share nothing: one copy keeps the space, the others get 0.
    """
    if not blocks:
        return []
    # order by (start, size descending), duplicates in list order: one integer key per block
    # (start shifted past every size, minus the size) and Python's stable sort
    shift = max(size for _start, size in blocks).bit_length() + 1
    keys = [(start << shift) - size for start, size in blocks]
    exclusive = [size for _start, size in blocks]
    ends = [start + size for start, size in blocks]
    stack: list[int] = []  # indices of enclosing blocks
    for i in sorted(range(len(blocks)), key=keys.__getitem__):
        start, size = blocks[i]
        while stack and ends[stack[-1]] <= start:
            stack.pop()
        if stack:
            exclusive[stack[-1]] -= size
        stack.append(i)
    return exclusive
