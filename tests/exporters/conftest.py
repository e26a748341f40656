"""Recorded-style root-dns records and BGP observations for the exporter tests.

Records are built with ``publiccore.records.make_record`` exactly as ``probes/root.py`` fills
them (SOA over UDP and TCP, hostname.bind, DNSKEY; NSIDs in the operators' real formats), with
realistic RTTs; target addresses are documentation addresses, never real root servers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import pathlib
import random
import shutil
import socket
import subprocess
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from publiccore.records import (
    Consistency,
    DnsQuery,
    Integrity,
    ProbeRef,
    Record,
    RootResult,
    RootTarget,
    SiteIdentity,
    make_record,
)
from publiccore.store import Observation
from publiccore.store.sqlite import SqliteStore

LETTERS = "abcdefghijklm"
SERIAL = 2026112800

# Per country: identities a probe there sees, per letter (None: the letter sends none).
SITES: dict[str, dict[str, str | None]] = {
    "NL": {
        "a": "nnn1-ams3",
        "b": "b3-ams",
        "c": "ams1a.c.root-servers.org",
        "d": "sgsg2.droot",
        "e": "c01.ams.eroot",
        "f": "ams1c.f.root-servers.org",
        "g": None,
        "h": "001.ams.h.root-servers.org",
        "i": "s1.ams",
        "j": "rootns-elams3",
        "k": "ns1.nl-ams.k.ripe.net",
        "l": "aa.nl-ams.l.root",
        "m": "M-CDG-1",
    },
    "RU": {
        "a": "nnn1-fra5",
        "b": "b4-mia",
        "c": "fra1b.c.root-servers.org",
        "d": "ruled1.droot",
        "e": "c02.led.eroot",
        "f": "led1a.f.root-servers.org",
        "g": None,
        "h": "003.apg.h.root-servers.org",
        "i": "s1.mow",
        "j": "rootns-elmow1",
        "k": "ns2.ru-mow.k.ripe.net",
        "l": "ab.ru-led.l.root",
        "m": "M-NRT-JPNAP-1",
    },
}


def target(letter: str, family: str) -> RootTarget:
    """A root target on a documentation address (RFC 5737 / RFC 3849)."""
    n = LETTERS.index(letter) + 1
    address = f"192.0.2.{n}" if family == "ipv4" else f"2001:db8::{n}"
    return RootTarget(
        letter=letter, name=f"{letter}.root-servers.net.", address=address, family=family
    )  # type: ignore[arg-type]


def soa(transport: str, *, rtt: float | None, serial: int, nsid: str | None) -> DnsQuery:
    """One `. SOA` query as the measurer records it (answered when ``rtt`` is set)."""
    if rtt is None:
        return DnsQuery(
            qname=".",
            qclass="IN",
            qtype="SOA",
            transport=transport,  # type: ignore
            failure="dns_timeout",
        )
    return DnsQuery(
        qname=".",
        qclass="IN",
        qtype="SOA",
        transport=transport,  # type: ignore
        rcode="NOERROR",
        aa=True,
        tc=False,
        rtt_seconds=round(rtt, 6),
        serial=serial,
        nsid_hex=nsid.encode().hex() if nsid else None,
        nsid_text=nsid,
        size_bytes=1109,
    )


def root_record(
    *,
    probe: ProbeRef,
    letter: str,
    family: str,
    started: dt.datetime,
    udp_rtt: float | None,
    tcp_rtt: float | None,
    outcome: str = "iana",
    serial: int = SERIAL,
    nsid: str | None = None,
) -> Record:
    """A root-dns record as ``probes.root.measure_root`` returns it."""
    answered = udp_rtt is not None or tcp_rtt is not None
    queries = (
        soa("udp", rtt=udp_rtt, serial=serial, nsid=nsid),
        soa("tcp", rtt=tcp_rtt, serial=serial, nsid=nsid),
        DnsQuery(
            qname="hostname.bind.",
            qclass="CH",
            qtype="TXT",
            transport="udp",
            rcode="NOERROR" if answered else None,
            failure=None if answered else "dns_timeout",
        ),
        DnsQuery(
            qname=".",
            qclass="IN",
            qtype="DNSKEY",
            transport="udp",
            rcode="NOERROR" if answered else None,
            tc=False,
            failure=None if answered else "dns_timeout",
        ),
    )
    integrity = Integrity(
        outcome=outcome if answered else "no-answer",  # type: ignore[arg-type]
        key_tags=(20326, 38696) if answered else (),
        validated_at=started.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    )
    result = RootResult(
        queries=queries,
        identity=SiteIdentity(nsid=nsid, hostname_bind=nsid),
        integrity=integrity,
        consistency=Consistency(status="consistent"),
    )
    return make_record(
        kind="root-dns",
        probe=probe,
        target=target(letter, family),
        result=result,
        started=started,
        finished=started + dt.timedelta(seconds=(udp_rtt or 4.0) + 0.2),
    )


@dataclasses.dataclass(frozen=True)
class Fleet:
    """Probes per country: (probe id, ASN)."""

    probes: dict[str, list[tuple[str, int]]]

    def refs(self) -> Iterator[ProbeRef]:
        for country, probes in self.probes.items():
            for probe_id, asn in probes:
                yield ProbeRef(id=probe_id, asn=asn, country=country)


FLEET = Fleet(
    {
        "NL": [("nl-1", 1103), ("nl-2", 3320), ("nl-3", 1136), ("nl-4", 33915)],
        "RU": [("ru-1", 12389), ("ru-2", 8359), ("ru-3", 3216), ("ru-4", 31133)],
    }
)


def _never(country: str, letter: str, family: str) -> bool:
    return False


def make_rounds(
    *,
    start: dt.datetime,
    rounds: int,
    seed: int = 5,
    unreachable: Callable[[str, str, str], bool] = _never,
    serial_at: Callable[[str, dt.datetime], int] = lambda letter, t: SERIAL,
    outcome: Callable[[str, str], str] = lambda probe_id, letter: "iana",
    fleet: Fleet = FLEET,
) -> list[Record]:
    """``rounds`` 5-minute rounds from every probe to every letter × family.

    ``unreachable(country, letter, family)`` makes those targets time out; ``outcome(probe id,
    letter)`` is the integrity outcome of answered records. RTTs: a per-letter
    base (in-country sites answer in a few ms, others tens of ms) with jitter; TCP adds one RTT
    for the handshake; a few per cent of IPv6 UDP queries time out.
    """
    rng = random.Random(seed)
    out: list[Record] = []
    for n in range(rounds):
        for probe in fleet.refs():
            assert probe.country is not None
            started = start + dt.timedelta(seconds=300 * n + rng.uniform(0, 60))
            for letter in LETTERS:
                nsid = SITES[probe.country][letter]
                base = 0.004 if nsid and probe.country.lower() in nsid else 0.03
                for family in ("ipv4", "ipv6"):
                    t = started + dt.timedelta(milliseconds=rng.uniform(0, 50))
                    if unreachable(probe.country, letter, family):
                        udp = tcp = None
                    else:
                        udp = base * rng.uniform(0.8, 1.6)
                        tcp = 2 * base * rng.uniform(0.8, 1.6)
                        if family == "ipv6" and rng.random() < 0.03:
                            udp = None
                    out.append(
                        root_record(
                            probe=probe,
                            letter=letter,
                            family=family,
                            started=t,
                            udp_rtt=udp,
                            tcp_rtt=tcp,
                            serial=serial_at(letter, t),
                            nsid=nsid,
                            outcome=outcome(probe.id, letter),
                        )
                    )
    return out


def bgp_observations(when: dt.datetime, *, scale: float = 1.0) -> list[Observation]:
    """One BGP dump's worth of observations, with the other stage's metric names."""
    out: list[Observation] = []
    countries = {"NL": (52_000, 6.5), "RU": (180_000, 9.0)}
    for country, (slash24, upstreams) in countries.items():

        def o(metric: str, value: float, **labels: str) -> Observation:
            return Observation(
                time=when,
                subject_kind="country",
                subject=country,  # noqa: B023
                metric=metric,
                value=value,
                labels=labels,
            )

        out += [
            o("bgp_country_visible_slash24", slash24 * scale),
            o("bgp_country_visibility_ratio", 0.97 * scale, family="ipv4"),
            o("bgp_country_visibility_ratio", 0.91 * scale, family="ipv6"),
            o("bgp_country_routed_units", slash24 * 1.02, family="ipv4"),
            o("bgp_country_routed_units", 9_000.0, family="ipv6"),
            o("bgp_country_unseen_prefixes", 12.0, family="ipv4"),
            o("bgp_country_unseen_prefixes", 3.0, family="ipv6"),
            o("bgp_country_upstreams", upstreams * 4, family="ipv4"),
            o("bgp_country_upstream_effective_number", upstreams * scale, family="ipv4"),
            o("bgp_country_top_upstream_share", 0.31, family="ipv4"),
            o("bgp_country_upstreams", upstreams, family="ipv6"),
            o("bgp_country_upstream_effective_number", upstreams / 2, family="ipv6"),
            o("bgp_country_top_upstream_share", 0.55, family="ipv6"),
            o("bgp_country_dependency_ratio", 0.62, family="ipv4", asn="3356"),
            o("bgp_country_dependency_ratio", 0.18, family="ipv4", asn="1299"),
            o("bgp_country_dependent_ases", 2.0, family="ipv4"),
            o("path_border_crossings_distinct", 14.0),
            o("path_border_crossings_effective_number", 5.2),
            o("path_traces", 96.0),
            o("path_traces_left_unmapped", 40.0),
        ]
    for letter, family, prefix in (("k", "ipv4", "192.0.2.0/24"), ("k", "ipv6", "2001:db8::/48")):
        labels = {"prefix_set": "root", "letter": letter, "family": family}
        out.append(
            Observation(
                time=when,
                subject_kind="prefix",
                subject=prefix,
                metric="bgp_prefix_visibility_ratio",
                value=0.99,
                labels=labels,
            )
        )
        out.append(
            Observation(
                time=when,
                subject_kind="prefix",
                subject=prefix,
                metric="bgp_root_prefix_unexpected_origin",
                value=0.0,
                labels=labels,
            )
        )
    return out


@pytest.fixture
def store(tmp_path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "store.sqlite")
    yield s
    s.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(binary: str) -> str:
    """The path of ``binary``, or skip saying how to install it."""
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not installed (Debian: apt-get install prometheus)")
    return path


@pytest.fixture(scope="session")
def pcdata() -> types.SimpleNamespace:
    """This module's builders, for test modules (conftest modules are not imported directly)."""
    return types.SimpleNamespace(
        make_rounds=make_rounds,
        root_record=root_record,
        bgp_observations=bgp_observations,
        FLEET=FLEET,
        SITES=SITES,
        SERIAL=SERIAL,
        LETTERS=LETTERS,
        free_port=free_port,
        need=need,
        Fleet=Fleet,
        prometheus=prometheus,
        prom_query=prom_query,
        prom_range=prom_range,
        wait_for=wait_for,
    )


def prom_query(base: str, expr: str, *, at: float | None = None) -> list[dict]:
    """Instant query result (a list of series); raises on an API error."""
    params = {"query": expr}
    if at is not None:
        params["time"] = repr(at)
    url = f"{base}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def prom_range(base: str, expr: str, *, start: float, end: float, step: float) -> list[dict]:
    """Range query result (a list of series with ``values``)."""
    params = {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
    url = f"{base}/api/v1/query_range?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(
    what: str, check: Callable[[], bool], *, attempts: int = 120, pause: float = 0.5
) -> None:
    """Poll ``check`` a bounded number of times; fail the test saying ``what`` never happened."""
    for _ in range(attempts):
        try:
            if check():
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(pause)
    pytest.fail(f"gave up waiting: {what}")


@contextlib.contextmanager
def prometheus(
    tmp_path: pathlib.Path, config: str, *, tsdb: pathlib.Path | None = None
) -> Iterator[str]:
    """A real Prometheus on 127.0.0.1 (free port, temporary TSDB), always killed; yields URL."""
    binary = need("prometheus")
    port = free_port()
    config_path = tmp_path / "prometheus.yml"
    config_path.write_text(config)
    tsdb = tsdb or tmp_path / "tsdb"
    log_path = tmp_path / "prometheus.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={tsdb}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=100y",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            if process.poll() is not None:
                pytest.fail(f"prometheus exited: {log_path.read_text()[-2000:]}")
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                return response.status == 200

        wait_for("prometheus ready", ready)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(15)
