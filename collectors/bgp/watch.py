"""The prefixes watched for the root servers: each root address's /24 (IPv4) or /48 (IPv6).

Shared by the RIS Live client (``live``: it subscribes to them) and the archive follower's
workers (``process``: they save which peers carry them, for the live client to start from).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Sequence

from publiccore.roothints import RootServer

# derived_snapshots row ``bgp-follow-root-peers/<source>/<collector>``: which peers carry each
# watched root prefix in the follower's newest state of the collector
ROOT_PEERS_SNAPSHOT = "bgp-follow-root-peers"


@dataclasses.dataclass(frozen=True, slots=True)
class Watched:
    """One subscribed prefix: a root server's (``letter``) or a configured one."""

    prefix: str
    prefix_set: str  # "root" or "configured"
    letter: str = ""

    @property
    def family(self) -> str:
        """``ipv6`` or ``ipv4``."""
        return "ipv6" if ":" in self.prefix else "ipv4"

    def labels(self) -> dict[str, str]:
        """Observation labels."""
        out = {"prefix_set": self.prefix_set, "family": self.family}
        if self.letter:
            out["letter"] = self.letter
        return out


def root_watch(servers: Sequence[RootServer]) -> list[Watched]:
    """The /24 (IPv4) or /48 (IPv6) holding each root server address."""
    out: dict[str, Watched] = {}
    for server in servers:
        for address in (*server.ipv4, *server.ipv6):
            length = 48 if ":" in address else 24
            net = ipaddress.ip_network(f"{address}/{length}", strict=False)
            out.setdefault(str(net), Watched(str(net), "root", server.letter))
    return list(out.values())
