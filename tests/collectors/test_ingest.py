"""The ingest service as a real ``publiccore serve`` process on 127.0.0.1.

Validation, auth, rate limit and a hypothesis fuzz of the API: never a 5xx, never a partial
batch stored, and the service keeps answering.
"""

from __future__ import annotations

import copy
import datetime as dt
import gzip
import importlib.util
import json
import pathlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from publiccore.collectors.ingest import Rejection, gunzip_capped, split_batch, validate_batch

from publiccore import records as rec
from publiccore.store import ProbeRegistration
from publiccore.store.registry import token_hash


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
MAX_BODY = 256 * 1024
_PROBE_A: dict[str, str] = {}  # the fuzzed probe's id, set by the server fixture


# --- pure helpers ----------------------------------------------------------------------------


def test_gunzip_capped_stops_a_bomb() -> None:
    bomb = gzip.compress(b"\0" * (50 * MAX_BODY))
    assert len(bomb) < MAX_BODY // 10
    with pytest.raises(Rejection) as info:
        gunzip_capped(bomb, MAX_BODY)
    assert info.value.status == 413


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\x1f\x8b\x08\x00garbage", "bad_gzip"),
        (gzip.compress(b"[1,2,3]")[:-6], "bad_gzip"),
    ],
)
def test_gunzip_capped_rejects_broken_streams(body: bytes, code: str) -> None:
    with pytest.raises(Rejection) as info:
        gunzip_capped(body, MAX_BODY)
    assert (info.value.status, info.value.code) == (400, code)


def test_gunzip_capped_reads_several_members() -> None:
    assert gunzip_capped(gzip.compress(b"[1,") + gzip.compress(b"2]"), MAX_BODY) == b"[1,2]"


@pytest.mark.parametrize(
    ("body", "code", "index"),
    [
        (b"", "empty_batch", None),
        (b"[1, 2", "bad_json", None),
        (b"\xff\xfe", "bad_encoding", None),
        (b"[" * 100_000 + b"]" * 100_000, "bad_json", None),
        (b'{"a": 1}\n{"b": \n', "bad_json", 1),
    ],
)
def test_split_batch_reasons(body: bytes, code: str, index: int | None) -> None:
    with pytest.raises(Rejection) as info:
        split_batch(body)
    assert (info.value.code, info.value.index) == (code, index)


def test_split_batch_json_lines_and_array() -> None:
    assert split_batch(b'{"a":1}\n\n{"b":2}\n') == [{"a": 1}, {"b": 2}]
    assert split_batch(b' [{"a":1}]') == [{"a": 1}]


_REGISTERED = ProbeRegistration(id="p1", country="NL", asn=64500, token_hash="h")
_NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "change",
    [
        lambda o: None,  # canonical and already with the registered country/ASN
        lambda o: o["probe"].update(country="FR", asn=3215),
        lambda o: o["probe"].update(country=None, asn=None),
        lambda o: o["probe"].pop("asn"),
        lambda o: o.update(started="2026-11-29T12:55:00+01:00"),
        lambda o: o["result"]["queries"][0].update(rtt_seconds=1),
    ],
)
def test_validate_batch_bodies_are_the_stored_records_canonical_json(change: Any) -> None:
    obj = S.make_root_record("p1", started=_NOW - dt.timedelta(minutes=5)).to_json()
    change(obj)
    records, bodies = validate_batch(
        [obj, copy.deepcopy(obj)], _REGISTERED, now=_NOW, max_future_seconds=300
    )
    assert len(records) == len(bodies) == 2
    for record, body in zip(records, bodies, strict=True):
        assert (record.probe.country, record.probe.asn) == ("NL", 64500)
        assert body == record.dumps()
        assert rec.parse_record(json.loads(body)) == record


@pytest.mark.parametrize(
    ("change", "status", "code", "path"),
    [
        (lambda o: o.update(kind=["root-dns"]), 400, "wrong_type", "kind"),
        (lambda o: o.update(kind={"a": 1}), 400, "wrong_type", "kind"),
        (lambda o: o.update(kind="ping"), 400, "unknown_kind", "kind"),
        (lambda o: o["probe"].update(id="p2"), 403, "wrong_probe", "probe.id"),
        (
            lambda o: o.update(finished="2026-11-29T12:30:00.000000Z"),
            400,
            "future_timestamp",
            "finished",
        ),
    ],
)
def test_validate_batch_rejects_naming_the_record(
    change: Any, status: int, code: str, path: str
) -> None:
    good = S.make_root_record("p1", started=_NOW - dt.timedelta(minutes=5)).to_json()
    bad = copy.deepcopy(good)
    change(bad)
    with pytest.raises(Rejection) as info:
        validate_batch([good, bad], _REGISTERED, now=_NOW, max_future_seconds=300)
    assert (
        info.value.status,
        info.value.code,
        info.value.index,
        info.value.path,
        info.value.records,
    ) == (status, code, 1, path, 2)


# --- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp = tmp_path_factory.mktemp("ingest")
    config = S.write_toml(
        tmp / "collector.toml",
        {
            "serve": {
                "max_body_bytes": MAX_BODY,
                "rate_limit_requests_per_minute": 1e9,
                "rate_limit_burst": 1_000_000,
            },
        },
    )
    collector = S.Collector(config=config, store=tmp / "store.sqlite").start()
    a_id, a_token = S.register_probe(collector.store, country="NL", asn=64500)
    b_id, b_token = S.register_probe(collector.store, country="BR", asn=64501)
    collector.probes = {"a": (a_id, a_token), "b": (b_id, b_token)}
    _PROBE_A["id"] = a_id
    yield collector
    assert collector.stop() == 0


def _count(server: Any) -> int:
    return len(S.store_ids(server.store))


def test_healthz(server: Any) -> None:
    status, body = S.get(server.port, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


@pytest.mark.parametrize(
    ("lines", "gz"), [(False, False), (False, True), (True, False), (True, True)]
)
def test_batch_accepted_then_duplicate(server: Any, lines: bool, gz: bool) -> None:
    a_id, a_token = server.probes["a"]
    records = [S.make_root_record(a_id, country="FR", asn=3215) for _ in range(5)]
    body = S.batch_body(records, lines=lines, gz=gz)
    status, out, _ = S.post(server.port, body, token=a_token, gzip_body=gz)
    assert status == 200, out
    assert out == {"accepted": 5, "duplicates": 0, "rejected": 0}
    status, out, _ = S.post(server.port, body, token=a_token, gzip_body=gz)
    assert (status, out) == (200, {"accepted": 0, "duplicates": 5, "rejected": 0})
    rows = {r[0]: r for r in S.store_rows(server.store)}
    for record in records:
        _id, probe_id, country, asn, stored = rows[record.id]
        # the registered country/ASN replace whatever the probe claimed, in the row and body
        assert (probe_id, country, asn) == (a_id, "NL", 64500)
        assert json.loads(stored)["probe"] == {"id": a_id, "country": "NL", "asn": 64500}


def test_one_bad_record_rejects_the_whole_batch(server: Any) -> None:
    a_id, a_token = server.probes["a"]
    good = [S.make_root_record(a_id) for _ in range(3)]
    items = [r.to_json() for r in good]
    items.insert(2, {**items[0], "id": rec.uuid7(), "kind": "carrier-pigeon"})
    before = _count(server)
    status, out, _ = S.post(server.port, json.dumps(items).encode(), token=a_token)
    assert status == 400
    assert (out["error"], out["index"], out["path"]) == ("unknown_kind", 2, "kind")
    assert out["accepted"] == 0 and out["rejected"] == 4
    assert _count(server) == before


@pytest.mark.parametrize(
    ("mutate", "code", "path"),
    [
        (lambda o: o.pop("started"), "missing_field", "started"),
        (lambda o: o.update(schema=99), "unknown_schema", "schema"),
        (lambda o: o["target"].update(address=7), "wrong_type", "target.address"),
        (
            lambda o: o["result"]["queries"][0].update(rtt_seconds="fast"),
            "wrong_type",
            "result.queries[0].rtt_seconds",
        ),
        (lambda o: o.update(id="not-a-uuid"), "invalid_value", "id"),
        (lambda o: o.update(kind=["root-dns"]), "wrong_type", "kind"),
    ],
)
def test_precise_reasons(server: Any, mutate: Any, code: str, path: str) -> None:
    a_id, a_token = server.probes["a"]
    obj = S.make_root_record(a_id).to_json()
    mutate(obj)
    status, out, _ = S.post(server.port, json.dumps([obj]).encode(), token=a_token)
    assert (status, out["error"], out["path"], out["index"]) == (400, code, path, 0)


def test_future_timestamps_rejected(server: Any) -> None:
    a_id, a_token = server.probes["a"]
    late = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    record = S.make_root_record(a_id, started=late)
    status, out, _ = S.post(server.port, S.batch_body([record]), token=a_token)
    assert (status, out["error"], out["path"]) == (400, "future_timestamp", "started")


def test_oversized_bodies_refused(server: Any) -> None:
    _a_id, a_token = server.probes["a"]
    status, out, _ = S.post(server.port, b"[" + b" " * MAX_BODY + b"]", token=a_token)
    assert (status, out["error"]) == (413, "too_large")
    bomb = gzip.compress(b"[" + b" " * (100 * MAX_BODY) + b"]", 9)
    status, out, _ = S.post(server.port, bomb, token=a_token, gzip_body=True)
    assert (status, out["error"]) == (413, "too_large")
    status, out, _ = S.post(server.port, b"[]", token=a_token, headers={"Content-Encoding": "br"})
    assert (status, out["error"]) == (415, "unsupported_encoding")


def test_auth_one_probe_cannot_write_as_another(server: Any) -> None:
    a_id, a_token = server.probes["a"]
    b_id, _b_token = server.probes["b"]
    before = _count(server)
    mixed = [S.make_root_record(a_id), S.make_root_record(b_id)]
    status, out, _ = S.post(server.port, S.batch_body(mixed), token=a_token)
    assert (status, out["error"], out["index"], out["path"]) == (403, "wrong_probe", 1, "probe.id")
    assert _count(server) == before


@pytest.mark.parametrize(
    "header", [None, "Bearer", "Basic abc", "Bearer nope", "Bearer " + "x" * 5000]
)
def test_auth_bad_tokens(server: Any, header: str | None) -> None:
    a_id, _ = server.probes["a"]
    headers = {} if header is None else {"Authorization": header}
    status, out, response_headers = S.post(
        server.port, S.batch_body([S.make_root_record(a_id)]), token=None, headers=headers
    )
    assert (status, out["error"]) == (401, "unauthorized")
    assert response_headers["www-authenticate"].startswith("Bearer")


def test_revoked_token_refused(server: Any) -> None:
    c_id, c_token = S.register_probe(server.store, country="KE", asn=64502)
    body = S.batch_body([S.make_root_record(c_id)])
    assert S.post(server.port, body, token=c_token)[0] == 200
    done = S.run_cli("probes", "revoke", "--store", str(server.store), c_id)
    assert done.returncode == 0, done.stderr
    status, out, _ = S.post(server.port, S.batch_body([S.make_root_record(c_id)]), token=c_token)
    assert (status, out["reason"]) == (401, "token revoked")
    assert S.run_cli("probes", "revoke", "--store", str(server.store), c_id).returncode == 1
    listing = S.run_cli("probes", "list", "--store", str(server.store), "--json")
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert {r["id"]: r["revoked"] is not None for r in rows}[c_id] is True
    assert c_token not in listing.stdout and token_hash(c_token) not in listing.stdout


def test_rate_limit_answers_429_with_retry_after(tmp_path: pathlib.Path) -> None:
    config = S.write_toml(
        tmp_path / "c.toml",
        {"serve": {"rate_limit_requests_per_minute": 1.0, "rate_limit_burst": 2}},
    )
    collector = S.Collector(config=config, store=tmp_path / "store.sqlite").start()
    try:
        p_id, token = S.register_probe(collector.store)
        answers = [
            S.post(collector.port, S.batch_body([S.make_root_record(p_id)]), token=token)
            for _ in range(3)
        ]
        assert [a[0] for a in answers] == [200, 200, 429]
        assert answers[2][1]["error"] == "rate_limited"
        assert int(answers[2][2]["retry-after"]) >= 1
        assert len(S.store_ids(collector.store)) == 2
    finally:
        assert collector.stop() == 0


def test_serve_workers_share_the_port(tmp_path: pathlib.Path) -> None:
    config = S.write_toml(
        tmp_path / "c.toml",
        {"serve": {"rate_limit_requests_per_minute": 1e6, "rate_limit_burst": 10_000}},
    )
    collector = S.Collector(
        config=config, store=tmp_path / "store.sqlite", args=("--workers", "2")
    ).start()
    try:
        p_id, token = S.register_probe(collector.store)
        records = [S.make_root_record(p_id) for _ in range(40)]
        for i in range(0, 40, 4):
            status, out, _ = S.post(collector.port, S.batch_body(records[i : i + 4]), token=token)
            assert (status, out["accepted"]) == (200, 4)
        assert S.post(collector.port, S.batch_body(records[:4]), token=token)[1] == {
            "accepted": 0,
            "duplicates": 4,
            "rejected": 0,
        }
    finally:
        assert collector.stop() == 0
    assert sorted(S.store_ids(collector.store)) == sorted(r.id for r in records)


# --- fuzz ------------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

_FIELDS = (
    "schema",
    "id",
    "kind",
    "probe",
    "started",
    "finished",
    "target",
    "result",
    "software",
    "result.queries",
    "result.identity",
    "result.integrity.outcome",
    "target.letter",
    "probe.id",
    "probe.country",
    "probe.asn",
)


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[part]
    obj[last] = value


@st.composite
def _bodies(draw: st.DrawFn) -> tuple[str, bytes, bool]:
    """(which, body, gzipped): valid batches, mutated records, junk, nesting, bombs."""
    which = draw(
        st.sampled_from(
            ["valid", "mutated", "json", "bytes", "deep", "huge", "bomb", "lines", "drop_field"]
        )
    )
    a_id = _PROBE_A.get("id", "A")
    if which in ("valid", "mutated", "lines", "drop_field"):
        n = draw(st.integers(1, 4))
        objs = [S.make_root_record(a_id).to_json() for _ in range(n)]
        if which == "mutated":
            target = draw(st.integers(0, n - 1))
            _set_path(objs[target], draw(st.sampled_from(_FIELDS)), draw(_json))
        if which == "drop_field":
            target = draw(st.integers(0, n - 1))
            objs[target].pop(draw(st.sampled_from(sorted(objs[target]))))
        if which == "lines":
            body = "\n".join(json.dumps(o) for o in objs).encode()
        else:
            body = json.dumps(objs).encode()
    elif which == "json":
        body = json.dumps(draw(_json)).encode()
    elif which == "bytes":
        body = draw(st.binary(max_size=200))
    elif which == "deep":
        depth = draw(st.integers(10, 200_000))
        body = b"[" * depth + b"]" * draw(st.integers(0, depth))
    elif which == "huge":
        obj = S.make_root_record(a_id).to_json()
        size = draw(st.sampled_from([1_000, 300_000, MAX_BODY + 10]))
        _set_path(obj, draw(st.sampled_from(["target.name", "probe.id", "id", "kind"])), "x" * size)
        body = json.dumps([obj]).encode()
    else:  # bomb
        body = b"[" + b" " * draw(st.sampled_from([MAX_BODY * 4, MAX_BODY * 40])) + b"]"
        return which, gzip.compress(body, 9), True
    gzipped = draw(st.booleans())
    if gzipped:
        body = gzip.compress(body)
        if draw(st.booleans()):
            cut = draw(st.floats(0.0, 1.0, exclude_max=True))
            body = body[: int(len(body) * cut)]  # a truncated stream
    return which, body, gzipped


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(
    case=_bodies(),
    token_choice=st.sampled_from(["a", "a", "a", "b", "none", "junk"]),
    replay=st.booleans(),
)
def test_fuzz_never_5xx_never_partial(
    server: Any, case: tuple[str, bytes, bool], token_choice: str, replay: bool
) -> None:
    _which, body, gzipped = case
    _a_id, a_token = server.probes["a"]
    token = {
        "a": a_token,
        "b": server.probes["b"][1],
        "none": None,
        "junk": "\u00e9" + "x" * 10,
    }.get(token_choice)
    if token is not None and not token.isascii():
        token = "x" * 43
    for _attempt in range(2 if replay else 1):
        before = _count(server)
        status, out, _ = S.post(server.port, body, token=token, gzip_body=gzipped)
        after = _count(server)
        assert status < 500, (status, out)
        if status == 200:
            assert after - before == out["accepted"]
            assert out["rejected"] == 0
        else:
            assert after == before, (status, out)
            assert {"error", "reason", "index"} <= set(out)
    assert S.get(server.port, "/healthz")[0] == 200


# Hostile alphabets for the fields that become labels or grouping keys, and timestamps across
# the whole range Python can represent (and past it, written out by hand).
_HOSTILE_TEXT = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), max_size=4),
    st.text(alphabet=st.characters(max_codepoint=0x1F), max_size=8),
    st.text(alphabet=st.sampled_from('a\u2028\u2029\x85\ufeff\\"{}\n'), max_size=12),
    st.tuples(st.sampled_from("a\u00e9\U0001f600\x00"), st.integers(65, 60_000)).map(
        lambda c: c[0] * c[1]
    ),
    st.sampled_from(["a", "m", "n", "A", "a\n", " a", "ipv4", "udp", "iana", "", "ZZ", "NL"]),
    st.text(max_size=20),
)
_LABEL_FIELDS = (
    "target.letter",
    "target.family",
    "target.name",
    "target.address",
    "result.queries.0.transport",
    "result.queries.0.rcode",
    "result.queries.0.failure",
    "result.identity.nsid",
    "result.identity.hostname_bind",
    "result.integrity.outcome",
    "result.integrity.reason",
    "software.name",
    "software.version",
)
_TIMES = st.one_of(
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S.%fZ")),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0999-01-01T00:00:00Z",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999Z",
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:00:00Z",
            "10000-01-01T00:00:00Z",
        ]
    ),
)


def _set_dotted(obj: Any, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        obj = obj[int(part)] if part.isdigit() else obj[part]
    obj[last] = value


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=st.lists(st.tuples(st.sampled_from(_LABEL_FIELDS), _HOSTILE_TEXT), max_size=3),
    started=st.none() | _TIMES,
    finished=st.none() | _TIMES,
    lines=st.booleans(),
)
def test_fuzz_hostile_labels_and_times(
    server: Any,
    fields: list[tuple[str, str]],
    started: str | None,
    finished: str | None,
    lines: bool,
) -> None:
    a_id, a_token = server.probes["a"]
    obj = S.make_root_record(a_id).to_json()
    for path, value in fields:
        _set_dotted(obj, path, value)
    for name, value in (("started", started), ("finished", finished)):
        if value is not None:
            obj[name] = value
    text = json.dumps(obj) if lines else json.dumps([obj])
    before = _count(server)
    status, out, _ = S.post(server.port, text.encode(), token=a_token)
    after = _count(server)
    assert status in (200, 400, 413), (status, out)
    assert after - before == (1 if status == 200 else 0)
    if status == 200:  # what was taken reads back, and is in its domain
        (row,) = [r for r in S.store_rows(server.store) if r[0] == obj["id"]]
        record = rec.loads(row[4])
        assert record.target.letter in "abcdefghijklm" and len(record.target.letter) == 1
        assert record.started.year >= 2000
        record.dumps().encode("utf-8")


def test_after_the_fuzz_every_reader_still_works(server: Any, tmp_path: pathlib.Path) -> None:
    """/metrics, ``report`` and ``export openmetrics`` on the fuzzed store; /metrics bounded."""
    assert S.wait_until(lambda: S.get(server.port, "/metrics")[0] == 200, timeout=30)
    status, body = S.get(server.port, "/metrics")
    assert status == 200 and len(body) < 2_000_000
    assert b"publiccore_aggregate_errors_total 0.0" in body
    body.decode("utf-8")
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).strftime("%Y-%m-%d")
    done = S.run_cli(
        "report",
        "--country",
        "NL",
        "--since",
        since,
        "--store",
        str(server.store),
        "--out",
        str(tmp_path / "report"),
    )
    assert done.returncode == 0, done.stderr
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    done = S.run_cli(
        "export",
        "openmetrics",
        "--since",
        start,
        "--until",
        until,
        "--store",
        str(server.store),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("# EOF")


def test_make_app_under_aiohttp_defaults(tmp_path: pathlib.Path) -> None:
    """Mounted elsewhere (aiohttp decompressing for us): same answers, bombs still capped."""
    import asyncio

    from aiohttp import web
    from publiccore.collectors.ingest import STATS_KEY, make_app

    from publiccore import config as cfg
    from publiccore.store import ProbeRegistration, open_store

    store = open_store(str(tmp_path / "store.sqlite"))
    store.add_probe(
        ProbeRegistration(id="p1", country="NL", asn=64500, token_hash=token_hash("tok"))
    )
    settings = cfg.from_mapping({"serve": {"max_body_bytes": MAX_BODY}})
    records = [S.make_root_record("p1") for _ in range(3)]
    bomb = gzip.compress(b"[" + b" " * (40 * MAX_BODY) + b"]", 9)
    cases = [
        (S.batch_body(records, gz=True), 200, None),
        (S.batch_body(records, lines=True), 200, None),
        # aiohttp's own decoder hands over what a truncated stream held: still a 400 here
        (gzip.compress(b"[1, 2]")[:-9], 400, "wrong_type"),
        (bomb, 413, "too_large"),
    ]

    async def main() -> tuple[list[tuple[int, Any]], Any]:
        app = make_app(store, settings)
        runner = web.AppRunner(app)  # aiohttp's defaults: auto_decompress on
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        try:
            answers = [
                await asyncio.to_thread(
                    S.post, port, body, token="tok", gzip_body=body[:2] == b"\x1f\x8b"
                )
                for body, _status, _code in cases
            ]
        finally:
            stats = app[STATS_KEY].snapshot()
            await runner.cleanup()
        return [(a[0], a[1].get("error")) for a in answers], stats

    try:
        answers, stats = asyncio.run(main())
    finally:
        store.close()
    assert answers == [(status, code) for _body, status, code in cases]
    assert stats["accepted_by_kind"] == {"root-dns": 3}
    assert stats["duplicates_by_kind"] == {"root-dns": 3}
    assert stats["rejected_by_reason"] == {"wrong_type": 2, "too_large": 1}


def test_app_raises_the_young_gc_threshold_while_it_runs(tmp_path: pathlib.Path) -> None:
    import asyncio
    import gc

    from aiohttp import web
    from publiccore.collectors.ingest import GC_THRESHOLD, make_app

    from publiccore import config as cfg
    from publiccore.store import open_store

    store = open_store(str(tmp_path / "store.sqlite"))
    before = gc.get_threshold()

    async def main() -> tuple[int, ...]:
        runner = web.AppRunner(make_app(store, cfg.from_mapping({})))
        await runner.setup()
        try:
            return gc.get_threshold()
        finally:
            await runner.cleanup()

    try:
        during = asyncio.run(main())
    finally:
        store.close()
    assert during == (max(before[0], GC_THRESHOLD), *before[1:])
    assert gc.get_threshold() == before
