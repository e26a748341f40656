"""The probe's spool: durable FIFO, acknowledged removal, bounded by a quota, counted drops."""

from __future__ import annotations

import datetime as dt
import pathlib

from publiccore.probes.spool import Spool

from publiccore import records as rec

T0 = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.UTC)


def _record(n: int) -> rec.Record:
    started = T0 + dt.timedelta(seconds=n)
    return rec.make_record(
        kind="root-dns",
        probe=rec.ProbeRef(id="p1", asn=64500, country="NL"),
        target=rec.RootTarget(
            letter="a", name="a.root-servers.net", address="127.0.0.1", family="ipv4"
        ),
        result=rec.RootResult(
            queries=(
                rec.DnsQuery(
                    qname=".", qclass="IN", qtype="SOA", transport="udp", failure="dns_timeout"
                ),
            ),
            identity=rec.SiteIdentity(),
            integrity=rec.Integrity(outcome="no-answer"),
        ),
        started=started,
        finished=started,
    )


def _invariant(spool: Spool) -> None:
    s = spool.stats()
    assert s.spooled_total == s.acked_total + s.dropped_total + s.depth + s.quarantined


def test_fifo_ack_and_counters(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    records = [_record(i) for i in range(10)]
    assert spool.add(records[:6], now=T0) == 0
    assert spool.add(records[6:], now=T0) == 0
    assert spool.add(records[:2], now=T0) == 0  # already spooled: ignored
    head = spool.peek(4)
    assert [h.id for h in head] == [r.id for r in records[:4]]
    assert rec.loads(head[0].body) == records[0]
    assert spool.ack([h.seq for h in head], now=T0) == 4
    assert spool.ack([h.seq for h in head], now=T0) == 0  # acknowledged twice: no-op
    stats = spool.stats()
    assert (stats.depth, stats.spooled_total, stats.acked_total) == (6, 10, 4)
    assert stats.last_upload_success == T0
    assert stats.bytes == sum(len(r.dumps()) for r in records[4:])
    _invariant(spool)
    spool.close()


def test_reopen_keeps_everything(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    records = [_record(i) for i in range(3)]
    spool.add(records)
    spool.note_failure("HTTP 503: busy", now=T0)
    # no close(): as after kill -9
    again = Spool(tmp_path / "s.sqlite")
    assert again.ids() == [r.id for r in records]
    stats = again.stats()
    assert (stats.last_failure_reason, stats.last_upload_failure) == ("HTTP 503: busy", T0)
    assert stats.upload_failures_total == 1
    again.close()
    spool.close()


def test_quota_drops_the_oldest_and_counts_them(tmp_path: pathlib.Path) -> None:
    one = len(_record(0).dumps())
    spool = Spool(tmp_path / "s.sqlite", quota_bytes=3 * one + one // 2)
    records = [_record(i) for i in range(8)]
    dropped = [spool.add([r]) for r in records]
    assert dropped == [0, 0, 0, 1, 1, 1, 1, 1]
    assert spool.ids() == [r.id for r in records[-3:]]
    stats = spool.stats()
    assert (stats.dropped_total, stats.depth) == (5, 3)
    assert stats.bytes <= stats.quota_bytes
    _invariant(spool)
    # one big round past the quota keeps only what fits, newest last
    assert spool.add([_record(i) for i in range(100, 110)]) == 10
    assert len(spool.ids()) == 3
    _invariant(spool)
    spool.close()


def test_drop_refused_record_counts_and_says_why(tmp_path: pathlib.Path) -> None:
    spool = Spool(tmp_path / "s.sqlite")
    spool.add([_record(1), _record(2)])
    head = spool.peek(1)
    assert spool.drop([head[0].seq], reason="HTTP 400 refused") == 1
    stats = spool.stats()
    assert (stats.depth, stats.dropped_total) == (1, 1)
    _invariant(spool)
    spool.close()


def test_close_gives_space_back(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = Spool(path)
    spool.add([_record(i) for i in range(300)])
    spool.close()
    full = path.stat().st_size
    spool = Spool(path)
    spool.ack([item.seq for item in spool.peek(300)])
    spool.close()
    assert path.stat().st_size < full / 4


def test_quarantine_sets_records_aside_and_counts_them(tmp_path: pathlib.Path) -> None:
    one = len(_record(0).dumps())
    spool = Spool(tmp_path / "s.sqlite", quota_bytes=6 * one + one // 2)
    records = [_record(i) for i in range(5)]
    spool.add(records)
    seqs = [r.seq for r in spool.peek(5)]
    assert spool.quarantine(seqs[:2], reason="HTTP 400: invalid_value") == 2
    assert [r.id for r in spool.peek(10)] == [r.id for r in records[2:]]  # never peeked again
    stats = spool.stats()
    assert (stats.depth, stats.quarantined, stats.quarantined_total) == (3, 2, 2)
    assert stats.last_quarantine_reason == "HTTP 400: invalid_value"
    assert stats.bytes == 5 * one  # still on disk, still counted against the quota
    _invariant(spool)
    # past the quota the quarantined records go first, then the oldest waiting ones
    assert spool.add([_record(i) for i in range(10, 13)]) == 2
    stats = spool.stats()
    assert (stats.depth, stats.quarantined, stats.dropped_total) == (6, 0, 2)
    _invariant(spool)
    spool.close()
    reopened = Spool(tmp_path / "s.sqlite", quota_bytes=6 * one + one // 2)
    assert reopened.stats().depth == 6
    reopened.close()
