"""Ingest hardening: closed domains for label fields, Unicode, time range, addresses, ids.

Table-driven checks of ``validate_batch`` and ``split_batch``, then the same through a real
``publiccore serve`` process (never a 5xx; an id from another probe is a conflict).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import pathlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from publiccore.collectors.ingest import Rejection, split_batch, validate_batch

from publiccore import records as rec
from publiccore.store import ProbeRegistration


def load_support() -> Any:
    name = "publiccore_test_ingest_support"
    if name not in sys.modules:
        path = pathlib.Path(__file__).with_name("test_ingest_support.py")
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


S = load_support()
NOW = dt.datetime.now(dt.UTC)  # every record of this file is built around it (not the wall clock)
PROBE = ProbeRegistration(id="p1", country="NL", asn=64500, token_hash="x")


def trace_record(probe_id: str, *, reply: str = "192.0.2.1") -> rec.Record:
    started = NOW - dt.timedelta(seconds=30)
    return rec.make_record(
        kind="traceroute",
        probe=rec.ProbeRef(id=probe_id, asn=64500, country="NL"),
        target=rec.TraceTarget(address="198.51.100.7", family="ipv4"),
        result=rec.TraceResult(
            hops=(rec.TraceHop(ttl=1, replies=(rec.TraceReply(address=reply, rtt_seconds=0.01),)),)
        ),
        started=started,
        finished=started + dt.timedelta(seconds=1),
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            obj = obj[int(part)] if part.isdigit() else obj[part]  # type: ignore[index]
        obj[parts[-1]] = value

    return mutate


@pytest.mark.parametrize(
    ("path", "value", "code"),
    [
        ("target.letter", "\ud800", "invalid_value"),
        ("target.letter", "n", "invalid_value"),
        ("target.letter", "A", "invalid_value"),
        ("target.letter", "a" * 5000, "invalid_value"),
        ("target.name", "x\udfffy", "invalid_value"),
        ("result.identity.nsid", "\udc80" * 3, "invalid_value"),
        ("result.identity.hostname_bind", "h" * 2000, "invalid_value"),
        ("result.queries.0.rcode", "NOERROR" * 20, "invalid_value"),
        ("target.address", "not-an-address", "invalid_value"),
        ("target.address", "192.0.2.300", "invalid_value"),
        ("id", "00000000-0000-0000-0000-000000000000", "invalid_value"),
        ("started", "0001-01-01T00:00:00+01:00", "invalid_value"),
        ("started", "9999-12-31T23:59:59-01:00", "invalid_value"),
        ("started", "0999-01-01T00:00:00Z", "implausible_timestamp"),
        ("started", "1999-12-31T23:59:59Z", "implausible_timestamp"),
        ("finished", "2999-01-01T00:00:00Z", "future_timestamp"),
    ],
)
def test_root_fields_held_to_their_domain(path: str, value: Any, code: str) -> None:
    obj = S.make_root_record("p1", started=NOW - dt.timedelta(seconds=5)).to_json()
    _set(path, value)(obj)
    with pytest.raises(Rejection) as info:
        validate_batch([obj], PROBE, now=NOW, max_future_seconds=300)
    assert (info.value.status, info.value.code, info.value.index) == (400, code, 0)
    assert info.value.path == path.replace(".0.", "[0].")
    json.dumps(info.value.response().text)  # the answer itself is encodable


def test_a_surrogate_pair_written_as_escapes_is_valid_unicode() -> None:
    obj = S.make_root_record("p1", started=NOW - dt.timedelta(seconds=5)).to_json()
    obj["result"]["identity"]["nsid"] = "site \U0001f600"  # json writes "\ud83d\ude00"
    records, bodies = validate_batch(
        [json.loads(json.dumps(obj))], PROBE, now=NOW, max_future_seconds=300
    )
    assert records[0].result.identity.nsid == "site \U0001f600"  # type: ignore[union-attr]
    assert rec.loads(bodies[0]) == records[0]


@pytest.mark.parametrize("reply", ["router.example", "2001:db8::1/64", "fe80::1%eth0", ""])
def test_trace_reply_address_must_be_an_address(reply: str) -> None:
    obj = trace_record("p1", reply=reply).to_json()
    with pytest.raises(Rejection) as info:
        validate_batch([obj], PROBE, now=NOW, max_future_seconds=300)
    assert (info.value.code, info.value.path) == (
        "invalid_value",
        "result.hops[0].replies[0].address",
    )


def test_valid_trace_and_root_records_pass() -> None:
    items = [
        trace_record("p1").to_json(),
        S.make_root_record("p1", letter="m", started=NOW - dt.timedelta(seconds=5)).to_json(),
    ]
    records, _bodies = validate_batch(items, PROBE, now=NOW, max_future_seconds=300)
    assert len(records) == 2


def test_json_lines_split_on_newline_only() -> None:
    objs = [
        S.make_root_record("p1", started=NOW - dt.timedelta(seconds=5)).to_json() for _ in range(3)
    ]
    objs[1]["result"]["integrity"]["reason"] = "a\u2028b\u2029c\x85d"
    body = "\n".join(json.dumps(o, ensure_ascii=False) for o in objs).encode("utf-8")
    items = split_batch(body)
    assert len(items) == 3
    assert items[1]["result"]["integrity"]["reason"] == "a\u2028b\u2029c\x85d"


# --- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("ingest-hardening")
    config = S.write_toml(
        tmp / "collector.toml",
        {"serve": {"rate_limit_requests_per_minute": 1e9, "rate_limit_burst": 1_000_000}},
    )
    collector = S.Collector(config=config, store=tmp / "store.sqlite").start()
    collector.probes = {
        "a": S.register_probe(collector.store, country="NL", asn=64500),
        "b": S.register_probe(collector.store, country="BR", asn=64501),
    }
    yield collector
    assert collector.stop() == 0


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("started", "0001-01-01T00:00:00+01:00"),
        ("started", "0999-01-01T00:00:00Z"),
        ("target.letter", "\ud800"),
        ("target.letter", "z" * 100_000),
    ],
)
def test_hostile_values_are_a_400_not_a_500(server: Any, path: str, value: str) -> None:
    a_id, a_token = server.probes["a"]
    obj = S.make_root_record(a_id).to_json()
    _set(path, value)(obj)
    before = len(S.store_ids(server.store))
    status, out, _ = S.post(server.port, json.dumps([obj]).encode(), token=a_token)
    assert status == 400, out
    assert out["path"] == path
    assert len(S.store_ids(server.store)) == before
    assert S.get(server.port, "/metrics")[0] == 200


def test_another_probes_id_is_a_conflict_not_a_duplicate(server: Any) -> None:
    a_id, a_token = server.probes["a"]
    b_id, b_token = server.probes["b"]
    owned = S.make_root_record(a_id)
    status, out, _ = S.post(server.port, S.batch_body([owned]), token=a_token)
    assert (status, out["accepted"]) == (200, 1)
    squat = rec.make_record(
        kind="root-dns",
        probe=rec.ProbeRef(id=b_id),
        target=owned.target,
        result=owned.result,
        started=owned.started,
        finished=owned.finished,
        record_id=owned.id,
    )
    fresh = S.make_root_record(b_id)
    status, out, _ = S.post(server.port, S.batch_body([fresh, squat]), token=b_token)
    assert status == 200, out
    assert out == {
        "accepted": 1,
        "duplicates": 0,
        "rejected": 1,
        "conflicts": 1,
        "conflict_indexes": [1],
    }
    owners = {row[0]: row[1] for row in S.store_rows(server.store)}
    assert owners[owned.id] == a_id and owners[fresh.id] == b_id
    # the owner's retry is still a plain duplicate
    status, out, _ = S.post(server.port, S.batch_body([owned]), token=a_token)
    assert (status, out) == (200, {"accepted": 0, "duplicates": 1, "rejected": 0})
    status, body = S.get(server.port, "/metrics")
    assert 'publiccore_ingest_rejected_records_total{reason="id_conflict"} 1.0' in body.decode()


def test_probes_add_refuses_an_unassigned_country(tmp_path: pathlib.Path) -> None:
    done = S.run_cli(
        "probes", "add", "--store", str(tmp_path / "s.sqlite"), "--country", "XX", "--asn", "1"
    )
    assert done.returncode == 1
    assert "ISO 3166-1 alpha-2" in done.stderr
