"""Paris traceroute measurer (scapy): one ``traceroute`` record per target.

Paris traceroute (Augustin et al., IMC 2006) keeps every field that load balancers hash on
constant across the probes of one trace — addresses, protocol, ports (UDP) or the ICMP
checksum — so that one trace follows one path through per-flow load balancing. Probes are told
apart by fields routers quote back in their ICMP errors but do not hash on.

All TTLs are sent at once (per attempt), so a trace takes about one timeout, not one per hop.
Sending raw packets needs CAP_NET_RAW; without it the record says ``permission_denied``.
scapy's send/receive loop blocks, so it runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Sequence
from typing import Any

from publiccore.probes.failure import Failure, classify

from publiccore.clock import Clock, utc_now
from publiccore.records import (
    ProbeRef,
    Record,
    TraceHop,
    TraceReply,
    TraceResult,
    TraceTarget,
    make_record,
)

PARIS_BASE_PORT = 33434


@dataclasses.dataclass(frozen=True, slots=True)
class TraceConfig:
    max_ttl: int = 30
    timeout_seconds: float = 2.0
    attempts: int = 3
    paris_id: int = 0  # selects the flow: UDP source port offset / ICMP identifier

    def __post_init__(self) -> None:
        if not 1 <= self.max_ttl <= 64:
            raise ValueError("max_ttl must be between 1 and 64")
        if not 1 <= self.attempts <= 10:
            raise ValueError("attempts must be between 1 and 10")
        if not self.timeout_seconds > 0:
            raise ValueError("timeout must be positive")


_CHECKSUM_KEY = 0x5043  # ICMP id + seq is kept at this sum so the checksum never changes


def _marker(attempt: int, ttl: int) -> int:
    return attempt * 256 + ttl


def _probes(target: TraceTarget, cfg: TraceConfig, attempt: int) -> list[Any]:
    """One packet per TTL, all of one flow: the fields balancers hash on never change.

    The probe is marked (attempt × 256 + TTL) where routers quote it back but do not hash:
    the IPv4 identification (UDP), the first payload bytes (UDP over IPv6), or the ICMP
    sequence number with the identifier moved the other way so the checksum stays constant
    (as Paris traceroute does for ICMP).
    """
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
    from scapy.packet import Raw

    packets = []
    sport = PARIS_BASE_PORT + cfg.paris_id
    dport = target.port or PARIS_BASE_PORT + 1
    for ttl in range(1, cfg.max_ttl + 1):
        marker = _marker(attempt, ttl)
        if target.family == "ipv4":
            ip: Any = IP(dst=target.address, ttl=ttl, id=marker)
        else:
            ip = IPv6(dst=target.address, hlim=ttl)
        if target.protocol == "icmp":
            ident = (_CHECKSUM_KEY + cfg.paris_id - marker) & 0xFFFF
            if target.family == "ipv4":
                packets.append(ip / ICMP(id=ident, seq=marker) / Raw(b"publiccore-paris"))
            else:
                packets.append(
                    ip / ICMPv6EchoRequest(id=ident, seq=marker, data=b"publiccore-paris")
                )
        else:
            payload = marker.to_bytes(2, "big") + b"publiccore-paris"
            if target.family == "ipv4":
                payload = b"publiccore-paris.."  # same length and bytes for every probe
            packets.append(ip / UDP(sport=sport, dport=dport) / Raw(payload))
    return packets


def _sent_marker(sent: Any, target: TraceTarget) -> int | None:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import ICMPv6EchoRequest
    from scapy.packet import Raw

    if target.protocol == "icmp":
        layer = sent.getlayer(ICMP) if target.family == "ipv4" else sent.getlayer(ICMPv6EchoRequest)
        return None if layer is None else int(layer.seq)
    if target.family == "ipv4":
        return int(sent[IP].id)
    raw = sent.getlayer(Raw)
    return int.from_bytes(bytes(raw.load)[:2], "big") if raw is not None else None


def _received_marker(received: Any, target: TraceTarget) -> int | None:
    """The marker of the probe this packet answers, read from what the sender quoted."""
    from scapy.layers.inet import ICMP, ICMPerror, IPerror
    from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPerror6
    from scapy.packet import Raw

    if target.family == "ipv4":
        if received.haslayer(IPerror):
            if target.protocol == "icmp":
                quoted = received.getlayer(ICMPerror)
                return None if quoted is None else int(quoted.seq)
            return int(received[IPerror].id)
        if target.protocol == "icmp" and received.haslayer(ICMP) and received[ICMP].type == 0:
            return int(received[ICMP].seq)
        return None
    if received.haslayer(IPerror6):
        inner = received[IPerror6]
        if target.protocol == "icmp":
            quoted = inner.getlayer(ICMPv6EchoRequest)
            return None if quoted is None else int(quoted.seq)
        raw = inner.getlayer(Raw)
        return int.from_bytes(bytes(raw.load)[:2], "big") if raw is not None else None
    if target.protocol == "icmp" and received.haslayer(ICMPv6EchoReply):
        return int(received[ICMPv6EchoReply].seq)
    return None


def _reply(received: Any, sent_time: float, family: str) -> TraceReply:
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.inet6 import IPv6

    layer = received[IP] if family == "ipv4" else received[IPv6]
    icmp = received[ICMP] if family == "ipv4" and received.haslayer(ICMP) else layer.payload
    rtt = max(0.0, float(received.time) - sent_time)
    return TraceReply(
        address=str(ipaddress.ip_address(layer.src)),
        rtt_seconds=round(rtt, 6),
        reply_ttl=int(layer.ttl if family == "ipv4" else layer.hlim),
        icmp_type=int(getattr(icmp, "type", 0) or 0),
        icmp_code=int(getattr(icmp, "code", 0) or 0),
    )


def trace_blocking(target: TraceTarget, cfg: TraceConfig) -> TraceResult:
    """Run the trace (blocking); network failures become ``failure``, never an exception."""
    from scapy.sendrecv import sr

    replies: dict[int, list[TraceReply]] = {}
    reached_at: int | None = None
    destination = str(ipaddress.ip_address(target.address))
    try:
        for attempt in range(cfg.attempts):
            answered, _unanswered = sr(
                _probes(target, cfg, attempt), timeout=cfg.timeout_seconds, verbose=0, multi=False
            )
            # scapy pairs by addresses and ports, which are the same for every probe of a
            # Paris trace; pair again by the marker the replying host quoted.
            sent_times = {_sent_marker(s, target): float(s.sent_time or 0.0) for s, _ in answered}
            for _sent, received in answered:
                marker = _received_marker(received, target)
                if marker is None or marker // 256 != attempt or marker not in sent_times:
                    continue
                ttl = marker % 256
                reply = _reply(received, sent_times[marker], target.family)
                replies.setdefault(ttl, []).append(reply)
                if reply.address == destination and (reached_at is None or ttl < reached_at):
                    reached_at = ttl
    except OSError as exc:
        return TraceResult(hops=(), paris_id=cfg.paris_id, failure=classify(exc, transport="raw"))
    last = reached_at or max(replies, default=0)
    hops = []
    for ttl in range(1, last + 1):
        got = replies.get(ttl, [])
        missing = max(0, cfg.attempts - len(got))
        hops.append(TraceHop(ttl=ttl, replies=(*got, *(TraceReply() for _ in range(missing)))))
    return TraceResult(
        hops=tuple(hops),
        destination_reached=reached_at is not None,
        paris_id=cfg.paris_id,
        failure=None if replies else Failure.NO_REPLY,
    )


async def measure_trace(
    target: TraceTarget, cfg: TraceConfig, *, probe: ProbeRef, clock: Clock = utc_now
) -> Record:
    """Trace the path to one target and return its ``traceroute`` record."""
    started = clock()
    result = await asyncio.to_thread(trace_blocking, target, cfg)
    return make_record(
        kind="traceroute",
        probe=probe,
        target=target,
        result=result,
        started=started,
        finished=clock(),
    )


def make_targets(addresses: Sequence[str], *, protocol: str = "udp") -> list[TraceTarget]:
    """Targets from address strings; raise ValueError for anything that is not an address."""
    out = []
    for text in addresses:
        address = ipaddress.ip_address(text)
        out.append(
            TraceTarget(
                address=str(address),
                family="ipv4" if address.version == 4 else "ipv6",
                protocol="icmp" if protocol == "icmp" else "udp",
            )
        )
    return out
