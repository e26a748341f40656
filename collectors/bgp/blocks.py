"""Address blocks as integer intervals: /24 and /48 equivalents, unions and exclusive sizes.

CIDR blocks are either nested or disjoint, so a sort by (start, size descending) and a stack give
the union (more-specifics counted once) and each block's space not covered by a more-specific.
"""

from __future__ import annotations

import bisect
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


class Coverage:
    """The union of a changing multiset of (start, size) CIDR blocks, kept per change.

    CIDR blocks are nested or disjoint, so the union is the sum of the maximal blocks (inside
    no other present block). Adding a block inside a maximal one adds no space; adding one that
    no present block holds makes it maximal, and the maximal blocks inside it stop being so.
    Removing a maximal block that holds nothing else gives its space back. Removing one that
    holds other blocks (they become maximal) marks the structure stale, and ``union`` rebuilds
    it from the blocks present, as ``union_size`` would; so do ``from_blocks``.
    """

    __slots__ = ("_count", "_inside", "_sizes", "_stale", "_starts", "_union")

    def __init__(self) -> None:
        self._count: dict[tuple[int, int], int] = {}  # present block → copies
        self._starts: list[int] = []  # maximal blocks' starts, sorted (they are disjoint)
        self._sizes: dict[int, int] = {}  # maximal block's start → its size
        self._inside: dict[int, int] = {}  # maximal block's start → present blocks inside it
        self._union = 0
        self._stale = False

    @classmethod
    def from_blocks(cls, blocks: Iterable[tuple[int, int]]) -> Coverage:
        """A coverage holding ``blocks`` (duplicates count as copies)."""
        made = cls()
        count = made._count
        for block_ in blocks:
            count[block_] = count.get(block_, 0) + 1
        made._rebuild()
        return made

    def _rebuild(self) -> None:
        self._starts, self._sizes, self._inside = [], {}, {}
        self._union = 0
        end = -1
        current = -1
        for start, size in sorted(self._count, key=lambda b: (b[0], -b[1])):
            if start < end:
                self._inside[current] += 1
                continue
            current, end = start, start + size
            self._starts.append(start)
            self._sizes[start] = size
            self._inside[start] = 0
            self._union += size
        self._stale = False

    @property
    def union(self) -> int:
        """Addresses covered, overlaps counted once."""
        if self._stale:
            self._rebuild()
        return self._union

    def _container(self, start: int, size: int) -> int | None:
        """The start of the maximal block holding (start, size) (not equal to it), or None."""
        at = bisect.bisect_right(self._starts, start) - 1
        if at < 0:
            return None
        outer = self._starts[at]
        outer_size = self._sizes[outer]
        if outer + outer_size >= start + size and (outer, outer_size) != (start, size):
            return outer
        return None

    def add(self, start: int, size: int) -> None:
        """One more copy of the block."""
        key = (start, size)
        copies = self._count.get(key, 0)
        self._count[key] = copies + 1
        if copies or self._stale:
            return
        outer = self._container(start, size)
        if outer is not None:
            self._inside[outer] += 1
            return
        low = bisect.bisect_left(self._starts, start)
        high = bisect.bisect_left(self._starts, start + size)
        inside = 0
        for first in self._starts[low:high]:  # maximal blocks it now holds
            self._union -= self._sizes.pop(first)
            inside += 1 + self._inside.pop(first)
        self._starts[low:high] = [start]
        self._sizes[start] = size
        self._inside[start] = inside
        self._union += size

    def remove(self, start: int, size: int) -> None:
        """One copy fewer of the block (KeyError when it is not present)."""
        key = (start, size)
        copies = self._count[key]
        if copies > 1:
            self._count[key] = copies - 1
            return
        del self._count[key]
        if self._stale:
            return
        if self._sizes.get(start) == size:  # a maximal block
            if self._inside[start]:
                self._stale = True  # what it held becomes maximal: rebuilt when asked
                return
            del self._sizes[start], self._inside[start]
            del self._starts[bisect.bisect_left(self._starts, start)]
            self._union -= size
            return
        outer = self._container(start, size)
        if outer is not None:
            self._inside[outer] -= 1
