"""The record envelope: round trips, the fixture corpus of every schema, precise rejections."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import pathlib
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publiccore import records
from publiccore.errors import RecordError

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "records"


def _root_record() -> records.Record:
    t0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    query = records.DnsQuery(
        qname=".",
        qclass="IN",
        qtype="SOA",
        transport="udp",
        rcode="NOERROR",
        aa=True,
        tc=False,
        rtt_seconds=0.0123,
        serial=2026010200,
        nsid_hex="6c6172",
        nsid_text="lar",
        size_bytes=512,
        wire_b64="AAAA",
        failure=None,
    )
    result = records.RootResult(
        queries=(query,),
        identity=records.SiteIdentity(nsid="lar"),
        integrity=records.Integrity(
            outcome="iana", key_tags=(20326, 38696), validated_at="2026-01-02T03:04:05.000000Z"
        ),
    )
    return records.make_record(
        kind="root-dns",
        probe=records.ProbeRef(id="p1", asn=64500, country="NL"),
        target=records.RootTarget(
            letter="k", name="k.root-servers.net.", address="192.0.2.1", family="ipv4"
        ),
        result=result,
        started=t0,
        finished=t0 + dt.timedelta(seconds=1),
    )


def test_round_trip_is_lossless() -> None:
    record = _root_record()
    again = records.loads(record.dumps())
    assert again == record
    assert again.to_json() == record.to_json()


def test_uuid7_is_time_ordered_version_7() -> None:
    first = records.uuid7(now_ns=1_000_000_000_000_000)
    second = records.uuid7(now_ns=1_000_000_001_000_000)
    assert uuid.UUID(first).version == 7
    assert first < second


def test_fixture_corpus_of_every_schema_parses() -> None:
    files = sorted(FIXTURES.glob("v*/*.jsonl"))
    assert files, "the fixture corpus is empty"
    count = 0
    for path in files:
        for line in path.read_text().splitlines():
            record = records.loads(line)
            assert records.loads(record.dumps()) == record
            count += 1
    assert count >= 2


def _mutated(change: Any) -> dict[str, Any]:
    obj = copy.deepcopy(_root_record().to_json())
    change(obj)
    return obj


@pytest.mark.parametrize(
    ("change", "path", "reason"),
    [
        (lambda o: o.pop("kind"), "kind", "missing field"),
        (lambda o: o.update(kind="ping"), "kind", "unknown kind"),
        (lambda o: o.update(schema=3), "schema", "unknown schema version 3"),
        (lambda o: o.update(schema="1"), "schema", "expected integer"),
        (lambda o: o.update(id="not-a-uuid"), "id", "not a UUID"),
        (lambda o: o.update(started="yesterday"), "started", "RFC 3339"),
        (lambda o: o.update(started="2026-01-02T03:04:05"), "started", "RFC 3339"),
        (
            lambda o: o.update(finished="2020-01-01T00:00:00Z"),
            "finished",
            "finished before started",
        ),
        (lambda o: o["probe"].update(country="Netherlands"), "probe.country", "ISO 3166"),
        (lambda o: o["probe"].update(country="NL\n"), "probe.country", "ISO 3166"),
        (lambda o: o.update(software={}), "software.name", "missing"),
        (lambda o: o["software"].pop("version"), "software.version", "missing"),
        (lambda o: o["probe"].update(asn=-1), "probe.asn", "out of range"),
        (lambda o: o["target"].update(family="ipx"), "target.family", "expected one of"),
        (
            lambda o: o["result"]["queries"][0].update(rtt_seconds="fast"),
            "result.queries[0].rtt_seconds",
            "expected number",
        ),
        (
            lambda o: o["result"]["queries"][0].update(aa=1),
            "result.queries[0].aa",
            "expected boolean",
        ),
        (
            lambda o: o["result"]["queries"][0].update(serial=1.5),
            "result.queries[0].serial",
            "expected integer",
        ),
        (
            lambda o: o["result"]["queries"][0].update(extra=1),
            "result.queries[0].extra",
            "unknown field",
        ),
        (lambda o: o["result"].update(queries={}), "result.queries", "expected array"),
        (
            lambda o: o["result"]["integrity"].update(outcome="fine"),
            "result.integrity.outcome",
            "expected one of",
        ),
        (
            lambda o: o["result"]["identity"].update(nsid="x" * (records.MAX_STRING + 1)),
            "result.identity.nsid",
            "string too long",
        ),
        (lambda o: o["result"].pop("integrity"), "result.integrity", "missing field"),
    ],
)
def test_malformed_records_are_rejected_with_the_field(change: Any, path: str, reason: str) -> None:
    with pytest.raises(RecordError) as caught:
        records.parse_record(_mutated(change))
    assert caught.value.path == path
    assert reason in caught.value.reason


@pytest.mark.parametrize("text", ["", "{", "[1,2]", "null", "1e999", "[" * 5000 + "]" * 5000])
def test_bad_json_is_a_record_error(text: str) -> None:
    with pytest.raises(RecordError):
        records.loads(text)


def test_nan_is_rejected() -> None:
    obj = _root_record().to_json()
    obj["result"]["queries"][0]["rtt_seconds"] = float("nan")
    with pytest.raises(RecordError, match="not finite"):
        records.loads(json.dumps(obj))


# --- the fast path and the checked walk ------------------------------------------------------


def _fixture_records() -> list[records.Record]:
    lines = [
        line
        for path in sorted(FIXTURES.glob("v*/*.jsonl"))
        for line in path.read_text().splitlines()
    ]
    return [_root_record(), *(records.loads(line) for line in lines)]


def _outcome(parse: Any, obj: Any) -> tuple[Any, ...]:
    try:
        return ("ok", parse(obj))
    except RecordError as exc:
        return ("rejected", exc.path, exc.reason)


def test_canonical_records_take_the_fast_path() -> None:
    for record in _fixture_records():
        obj = json.loads(record.dumps())
        assert records._parse_canonical(obj) == record
        parsed, wire = records.parse_record_wire(obj)
        assert parsed == record and wire is obj
        assert records.dumps_wire(wire) == record.dumps()


@pytest.mark.parametrize("kind", [["root-dns"], {"a": 1}, None, 1, True])
def test_kind_not_a_string_is_a_record_error(kind: Any) -> None:
    obj = _root_record().to_json()
    obj["kind"] = kind
    with pytest.raises(RecordError) as caught:
        records.parse_record(obj)
    assert caught.value.path == "kind"
    assert caught.value.reason.startswith("expected string, got ")


_BIG = 2**63


# (change, path, reason): the exact rejection; each one also fails the fast path first.
MALFORMED: list[tuple[Any, str, str]] = [
    (lambda o: o.update(kind=["root-dns"]), "kind", "expected string, got array"),
    (lambda o: o.update(kind={}), "kind", "expected string, got object"),
    (lambda o: o.update(kind=None), "kind", "expected string, got null"),
    (lambda o: o.update(kind="x" * 100), "kind", f"unknown kind {'x' * 40!r}"),
    (lambda o: o.update(schema=True), "schema", "expected integer, got boolean"),
    (lambda o: o.update(schema=None), "schema", "missing field"),
    (lambda o: o.update(extra=1), "extra", "unknown field"),
    (lambda o: o.update(id=o["id"].upper()), "id", "UUID not in canonical lower-case form"),
    (lambda o: o.update(id="{" + o["id"] + "}"), "id", "UUID not in canonical lower-case form"),
    (lambda o: o.update(id=7), "id", "expected string, got number"),
    (
        lambda o: o.update(started="2026-02-30T00:00:00.000000Z"),
        "started",
        "not an RFC 3339 UTC timestamp",
    ),
    (lambda o: o.update(started=None), "started", "expected RFC 3339 string, got null"),
    (
        lambda o: o.update(started="2030-01-02T03:04:05.000000Z"),
        "finished",
        "finished before started",
    ),
    (lambda o: o.update(probe=None), "probe", "expected object, got null"),
    (lambda o: o.update(probe=[]), "probe", "expected object, got array"),
    (lambda o: o["probe"].update(id=""), "probe.id", "empty probe id"),
    (
        lambda o: o["probe"].update(country="nl"),
        "probe.country",
        "expected an ISO 3166-1 alpha-2 code",
    ),
    (lambda o: o["probe"].update(asn=2**32), "probe.asn", "ASN out of range"),
    (lambda o: o["probe"].update(asn=True), "probe.asn", "expected integer, got boolean"),
    (lambda o: o["probe"].pop("id"), "probe.id", "missing field"),
    (lambda o: o["target"].update(letter=None), "target.letter", "expected string, got null"),
    (
        lambda o: o["target"].update(family=True),
        "target.family",
        "expected one of ipv4, ipv6, got 'boolean'",
    ),
    (
        lambda o: o["result"]["queries"][0].update(transport="UDP"),
        "result.queries[0].transport",
        "expected one of udp, tcp, got 'UDP'",
    ),
    (
        lambda o: o["result"]["queries"][0].update(serial=_BIG),
        "result.queries[0].serial",
        "integer out of range",
    ),
    (
        lambda o: o["result"]["queries"][0].update(serial=True),
        "result.queries[0].serial",
        "expected integer, got boolean",
    ),
    (
        lambda o: o["result"]["queries"][0].update(rtt_seconds=float("inf")),
        "result.queries[0].rtt_seconds",
        "number not finite",
    ),
    (
        lambda o: o["result"]["queries"][0].update(rtt_seconds=2**53 + 1),
        "result.queries[0].rtt_seconds",
        "number out of range",
    ),
    (
        lambda o: o["result"]["queries"][0].update(rtt_seconds=False),
        "result.queries[0].rtt_seconds",
        "expected number, got boolean",
    ),
    (lambda o: o["result"]["queries"][0].pop("qname"), "result.queries[0].qname", "missing field"),
    (
        lambda o: o["result"]["queries"].append(None),
        "result.queries[1]",
        "expected object, got null",
    ),
    (
        lambda o: o["result"].update(queries=[o["result"]["queries"][0]] * (records.MAX_ITEMS + 1)),
        "result.queries",
        f"too many items ({records.MAX_ITEMS + 1} > {records.MAX_ITEMS})",
    ),
    (
        lambda o: o["result"]["integrity"].update(key_tags=[1, 2.0]),
        "result.integrity.key_tags[1]",
        "expected integer, got number",
    ),
    (
        lambda o: o["result"]["integrity"].update(key_tags=[True]),
        "result.integrity.key_tags[0]",
        "expected integer, got boolean",
    ),
    (
        lambda o: o["result"]["consistency"].update(differs=None),
        "result.consistency.differs",
        "expected array, got null",
    ),
    (lambda o: o["software"].update(name=12), "software.name", "expected string, got number"),
    (lambda o: o["software"].update(build="x"), "software.build", "unknown field"),
    (lambda o: o.update(target="k"), "target", "expected object, got string"),
]


@pytest.mark.parametrize(("change", "path", "reason"), MALFORMED)
def test_fast_path_rejects_what_the_checked_walk_rejects(
    change: Any, path: str, reason: str
) -> None:
    obj = _mutated(change)
    with pytest.raises(records._NotCanonical):
        records._parse_canonical(copy.deepcopy(obj))
    assert _outcome(records.parse_record, obj) == ("rejected", path, reason)
    assert _outcome(records._parse_checked, obj) == ("rejected", path, reason)


# Valid but not canonical: parsed by the checked walk, wire form rebuilt.
NOT_CANONICAL: list[Any] = [
    lambda o: o["result"].pop("consistency"),
    lambda o: o["result"]["queries"][0].pop("failure"),
    lambda o: o["probe"].pop("asn"),
    lambda o: o["result"]["queries"][0].update(rtt_seconds=1),
    lambda o: o.update(started="2026-01-02T04:04:05+01:00"),
    lambda o: o.update(started="2026-01-02T03:04:05Z"),
    lambda o: o.update(started="2026-01-02t03:04:05.000000z"),
    lambda o: o.update(started="0999-01-02T03:04:05.000000Z"),
]


@pytest.mark.parametrize("change", NOT_CANONICAL)
def test_valid_but_not_canonical_records_parse_with_their_wire_form(change: Any) -> None:
    obj = _mutated(change)
    expected = records._parse_checked(copy.deepcopy(obj))
    record, wire = records.parse_record_wire(obj)
    assert record == expected
    assert wire is not obj and wire == record.to_json()
    assert records.dumps_wire(wire) == record.dumps()


def test_key_order_does_not_matter_to_the_fast_path() -> None:
    record = _root_record()
    obj = json.loads(json.dumps(record.to_json()))  # to_json's order, not sorted
    obj = dict(reversed(list(obj.items())))
    parsed, wire = records.parse_record_wire(obj)
    assert parsed == record and wire is obj
    assert records.dumps_wire(wire) == record.dumps()


# A differential fuzz: any mutation of a real record gets the same answer from parse_record
# (fast path, then the checked walk) as from the checked walk alone; what is accepted has the
# record's canonical JSON as its wire form.

_SPECIAL = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1.0,
        -0.0,
        0.5,
        1e16,
        2**31,
        2**32,
        2**53 + 1,
        2**63,
        -(2**63),
        float("inf"),
        float("-inf"),
        float("nan"),
        "",
        "NL",
        "nl",
        "NL\n",
        "udp",
        "ipv4",
        "iana",
        "root-dns",
        "traceroute",
        "2026-01-02T03:04:05.000000Z",
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:05.000000+00:00",
        "2026-01-02T04:04:05.000000+01:00",
        "0999-01-02T03:04:05.000000Z",
        "2026-02-30T03:04:05.000000Z",
        "2026-01-02 03:04:05Z",
        "2030-01-02T03:04:05.000000Z",
        "018c1b5e-9c4d-7b2a-8e3f-0123456789ab",
        "018C1B5E-9C4D-7B2A-8E3F-0123456789AB",
        "018c1b5e9c4d7b2a8e3f0123456789ab",
        "x" * (records.MAX_STRING + 1),
        [],
        {},
        [1],
        [True],
        [1.5],
        {"a": 1},
    ]
)
_JSON = st.recursive(
    _SPECIAL | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
).map(copy.deepcopy)  # a fresh copy: the test mutates what it draws (_SPECIAL holds [] and {})


def _containers(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a dict or list inside ``obj`` (``()`` is ``obj`` itself)."""
    found = [path]
    children = obj.items() if isinstance(obj, dict) else enumerate(obj)
    for key, value in children:
        if isinstance(value, dict | list):
            found += _containers(value, (*path, key))
    return found


@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_any_mutation_gets_the_checked_walks_answer(data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(_FIXTURE_WIRES))
    obj = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        container = obj
        for key in data.draw(st.sampled_from(_containers(obj))):
            container = container[key]
        keys = list(container.keys() if isinstance(container, dict) else range(len(container)))
        action = data.draw(st.sampled_from(["set", "set", "delete", "add"]))
        if action == "add" or not keys:
            if isinstance(container, dict):
                container[
                    data.draw(st.sampled_from([*keys, "extra"]) if keys else st.just("extra"))
                ] = data.draw(_JSON)
            else:
                container.append(data.draw(_JSON))
        elif action == "delete":
            del container[data.draw(st.sampled_from(keys))]
        else:
            container[data.draw(st.sampled_from(keys))] = data.draw(_JSON)
    expected = _outcome(records._parse_checked, copy.deepcopy(obj))
    assert _outcome(records.parse_record, copy.deepcopy(obj)) == expected
    if expected[0] == "ok":
        record, wire = records.parse_record_wire(obj)
        assert records.dumps_wire(wire) == record.dumps()


_FIXTURE_WIRES = [json.loads(r.dumps()) for r in _fixture_records()]


def test_every_schema_keeps_its_wire_form_byte_for_byte() -> None:
    """A stored record of any schema reads back to exactly the bytes that were written."""
    for path in sorted(FIXTURES.glob("v*/*.jsonl")):
        version = int(path.parent.name.removeprefix("v"))
        for line in path.read_text().splitlines():
            record = records.loads(line)
            assert record.schema == version
            assert record.dumps() == records.dumps_wire(json.loads(line))


def test_schema_2_carries_round_and_source_schema_1_has_neither() -> None:
    v2 = [
        records.loads(x) for x in (FIXTURES / "v2" / "root-dns-lab.jsonl").read_text().splitlines()
    ]
    assert {r.round for r in v2} == {"01936f2a-0000-7000-8000-000000000001"}
    assert {r.source_name for r in v2} == {"volunteer"}
    trace = (FIXTURES / "v2" / "traceroute-atlas-3082698.jsonl").read_text().splitlines()[0]
    assert records.loads(trace).source == records.RecordSource("ripe-atlas", measurement=3082698)
    v1 = records.loads((FIXTURES / "v1" / "root-dns-lab.jsonl").read_text().splitlines()[0])
    assert v1.round is None and "round" not in v1.to_json()
    with pytest.raises(records.RecordError, match="unknown field"):
        records.parse_record({**v1.to_json(), "round": "r1"})


def test_round_id_is_bounded() -> None:
    record = _root_record()
    assert record.schema == records.SCHEMA_VERSION == 2
    with pytest.raises(RecordError, match="round id"):
        records.loads(dataclasses.replace(record, round="x" * 65).dumps())
    assert records.loads(dataclasses.replace(record, round="r-1").dumps()).round == "r-1"


def _code_by_reason(reason: str) -> str:
    """The code ingest used to derive from the reason text (kept: the ingest API's codes)."""
    if reason in ("missing field", "unknown field"):
        return reason.replace(" ", "_")
    for prefix, code in (("unknown schema", "unknown_schema"), ("unknown kind", "unknown_kind")):
        if reason.startswith(prefix):
            return code
    return "wrong_type" if reason.startswith(("expected", "must not be null")) else "invalid_value"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (lambda o: o.pop("kind"), "missing_field"),
        (lambda o: o.update(kind="ping"), "unknown_kind"),
        (lambda o: o.update(kind=["root-dns"]), "wrong_type"),
        (lambda o: o.update(schema=3), "unknown_schema"),
        (lambda o: o.update(id="not-a-uuid"), "invalid_value"),
        (lambda o: o["result"]["queries"][0].update(extra=1), "unknown_field"),
        (lambda o: o["probe"].update(asn=-1), "invalid_value"),
        (lambda o: o["target"].update(family=None), "wrong_type"),
    ]
    + [(change, _code_by_reason(reason)) for change, _, reason in MALFORMED],
)
def test_a_record_error_carries_its_code(change: Any, code: str) -> None:
    with pytest.raises(RecordError) as caught:
        records.parse_record(_mutated(change))
    assert caught.value.code == code == _code_by_reason(caught.value.reason)


def test_bad_json_has_the_invalid_value_code() -> None:
    with pytest.raises(RecordError) as caught:
        records.loads("{")
    assert caught.value.code == "invalid_value"
