"""``publiccore.app.services``: the local probe's registration and the run summary (pure parts)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pathlib

import pytest

from publiccore import config as cfg
from publiccore import records as rec
from publiccore.app import services
from publiccore.errors import ConfigError
from publiccore.store.sqlite import SqliteStore

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.UTC)


def soa(
    transport: str,
    *,
    rtt: float | None = 0.012,
    failure: str | None = None,
    serial: int | None = 2026112900,
) -> rec.DnsQuery:
    return rec.DnsQuery(
        qname=".",
        qclass="IN",
        qtype="SOA",
        transport=transport,
        rcode=None if failure else "NOERROR",
        aa=failure is None,
        tc=False,
        rtt_seconds=None if failure else rtt,
        serial=None if failure else serial,
        failure=failure,
    )


def root_record(
    letter: str,
    family: str,
    queries: tuple[rec.DnsQuery, ...],
    *,
    outcome: str = "iana",
    nsid: str | None = None,
) -> rec.Record:
    return rec.Record(
        id=rec.uuid7(),
        kind="root-dns",
        probe=rec.ProbeRef(id="p1", asn=64500, country="NL"),
        started=T0,
        finished=T0,
        target=rec.RootTarget(
            letter=letter,
            name=f"{letter}.root-servers.net",
            address="192.0.2.1" if family == "ipv4" else "2001:db8::1",
            family=family,
        ),  # type: ignore[arg-type]
        result=rec.RootResult(
            queries=queries,
            identity=rec.SiteIdentity(nsid=nsid),
            integrity=rec.Integrity(outcome=outcome),  # type: ignore[arg-type]
            consistency=rec.Consistency(status="consistent"),
        ),
    )


def test_letter_rows_per_family_and_transport() -> None:
    records = [
        root_record("k", "ipv4", (soa("udp", rtt=0.0123), soa("tcp", rtt=0.0301)), nsid="k1.ams"),
        root_record(
            "k",
            "ipv6",
            (soa("udp", failure="dns_timeout"), soa("tcp", failure="tcp_refused")),
            outcome="no-answer",
        ),
        root_record("a", "ipv4", (soa("udp"), soa("tcp")), outcome="alternate"),
    ]
    rows = services.letter_rows(records)
    assert [r.letter for r in rows] == ["a", "k"]
    k = rows[1]
    assert k.cells == {
        ("ipv4", "udp"): "12 ms",
        ("ipv4", "tcp"): "30 ms",
        ("ipv6", "udp"): "dns_timeout",
        ("ipv6", "tcp"): "tcp_refused",
    }
    assert k.reachable == {
        ("ipv4", "udp"): True,
        ("ipv4", "tcp"): True,
        ("ipv6", "udp"): False,
        ("ipv6", "tcp"): False,
    }
    assert (k.site, k.serial, k.integrity) == ("k1.ams", "2026112900", "iana, no-answer")
    line = services.round_line(3, records)
    assert line.startswith("root round 3: 3 addresses of 2 letters;")
    assert "ipv4/udp 2/2" in line and "ipv6/udp 0/1" in line
    assert "integrity alternate 1, iana 1, no-answer 1" in line
    assert "no root server answered" not in line
    offline = services.round_line(1, [records[1]])
    assert offline.endswith("no root server answered (is this host offline?)")


def test_render_summary_before_and_after_a_round() -> None:
    from rich.console import Console

    state = services.RunState(
        probe=rec.ProbeRef(id="p1", asn=0, country="ZZ"),
        url="http://127.0.0.1:8478",
        store_label="s.sqlite",
        interval_seconds=300.0,
    )
    console = Console(width=160, record=True)
    console.print(services.render_summary(state, T0))
    text = console.export_text()
    assert "waiting for the first root round" in text
    assert "set [probe] country and asn" in text
    state.last_round = [root_record("k", "ipv4", (soa("udp"), soa("tcp")), nsid="k1.ams")]
    state.last_round_at = T0
    state.rounds = 1
    console.print(services.render_summary(state, T0 + dt.timedelta(seconds=10)))
    text = console.export_text()
    assert "k1.ams" in text and "next in 290 s" in text


def test_local_probe_registers_once_and_survives_a_new_store(tmp_path: pathlib.Path) -> None:
    settings = cfg.Settings()
    settings.probe = dataclasses.replace(settings.probe, country="nl", asn=64500)
    credentials = tmp_path / "store.run-probe.json"
    store = SqliteStore(str(tmp_path / "a.sqlite"))
    try:
        first = services.local_probe(store, settings, credentials)
        again = services.local_probe(store, settings, credentials)
        assert first.created and not again.created
        assert first.ref == again.ref == rec.ProbeRef(id=first.ref.id, asn=64500, country="NL")
        assert first.token == again.token
        # revoked: a new probe, new credentials
        assert store.revoke_probe(first.ref.id)
        replaced = services.local_probe(store, settings, credentials)
        assert replaced.created and replaced.ref.id != first.ref.id
    finally:
        store.close()
    # a fresh store learns the saved probe, so spooled records stay uploadable
    other = SqliteStore(str(tmp_path / "b.sqlite"))
    try:
        known = services.local_probe(other, settings, credentials)
        assert known.created and known.ref.id == replaced.ref.id
        assert [p.id for p in other.list_probes()] == [replaced.ref.id]
    finally:
        other.close()


def test_local_probe_refuses_unreadable_credentials(tmp_path: pathlib.Path) -> None:
    credentials = tmp_path / "x.run-probe.json"
    credentials.write_text("[1, 2]")
    store = SqliteStore(str(tmp_path / "a.sqlite"))
    try:
        with pytest.raises(ConfigError, match="delete the file"):
            services.local_probe(store, cfg.Settings(), credentials)
        assert store.list_probes() == []
    finally:
        store.close()


def test_run_state_lives_beside_the_store(tmp_path: pathlib.Path) -> None:
    settings = cfg.Settings()
    spool, credentials = services.run_state_paths(settings, str(tmp_path / "x.sqlite"))
    assert (spool, credentials) == (tmp_path / "x.run-spool.sqlite", tmp_path / "x.run-probe.json")


def test_serve_answers_ingest_metrics_and_events_on_one_port(tmp_path: pathlib.Path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "publiccore",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            str(tmp_path / "s.sqlite"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split()[-1]
        with urllib.request.urlopen(url + "/healthz", timeout=10) as answer:
            assert json.load(answer) == {"status": "ok"}
        with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert "publiccore_regulatory_event_timestamp_seconds{" in metrics
        with urllib.request.urlopen(url + "/api/v1/events?country=RU", timeout=10) as answer:
            events = json.load(answer)["events"]
        assert events and {e["country"] for e in events} == {"RU"}
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
