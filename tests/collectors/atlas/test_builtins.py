"""The table of Atlas root built-ins (collectors/atlas/builtins.py) against real results.

Real results of root built-ins: the one in tests/fixtures/atlas (msm 10301, see its README) and
none in shared/data/atlas (its PROVENANCE.md: no built-in root data files were found), whose
measurement ids must then not be in the table either (the L-root one there is a one-off).
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
from typing import Any

import pytest
from publiccore.collectors.atlas import builtins, files

from publiccore import records as rec
from publiccore import roothints
from publiccore.app import cli
from publiccore.store import open_store

FIXTURES = pathlib.Path(__file__).resolve().parents[2] / "fixtures" / "atlas"


def _results(path: pathlib.Path) -> list[dict[str, Any]]:
    return [i.value for i in files.read_results(path) if isinstance(i, files.Item)]


def _check_against_table(result: dict[str, Any]) -> builtins.Builtin:
    """The built-in of ``result`` and its destination agree: that letter, that family, by
    the hints in force at the result's time."""
    builtin = builtins.BY_ID[result["msm_id"]]
    when = dt.datetime.fromtimestamp(result["timestamp"], dt.UTC)
    target = roothints.bundled_history().target_at(result["dst_addr"], when)
    assert target is not None, result["dst_addr"]
    assert (target.letter, target.family) == (builtin.letter, builtin.family)
    return builtin


def test_the_real_built_in_result_agrees_with_the_table() -> None:
    (result,) = _results(FIXTURES / "builtin-10301.json")
    builtin = _check_against_table(result)
    assert builtin.kind == "hostname.bind" and builtin.letter == "k"


def test_shared_real_results_contradict_nothing_in_the_table(atlas_dir: pathlib.Path) -> None:
    seen: set[int] = set()
    for path in sorted(atlas_dir.rglob("*.json*")):
        for result in _results(path):
            if type(result.get("msm_id")) is int:
                seen.add(result["msm_id"])
                if result["msm_id"] in builtins.BY_ID:
                    _check_against_table(result)
    assert 1071935 in seen and len(seen) > 30  # the files were read
    assert not seen & builtins.BY_ID.keys()  # no root built-in among them (PROVENANCE.md)


def test_table_shape() -> None:
    ids = [b.id for b in builtins.BUILTINS]
    assert len(ids) == len(set(ids)) == 27
    keys = [(b.letter, b.family, b.kind) for b in builtins.BUILTINS]
    assert len(keys) == len(set(keys))
    letters = {s.letter for s in roothints.load_hints()}
    chaos = [b for b in builtins.BUILTINS if b.kind == "hostname.bind"]
    assert {(b.letter, b.family) for b in chaos} == {
        (letter, family) for letter in letters for family in ("ipv4", "ipv6")
    }
    # The source's IPv6 row is its IPv4 row plus 1000, letter by letter.
    v4 = {b.letter: b.id for b in chaos if b.family == "ipv4"}
    assert {b.letter: b.id for b in chaos if b.family == "ipv6"} == {
        k: v + 1000 for k, v in v4.items()
    }
    assert all(b.source for b in builtins.BUILTINS)


def test_a_built_in_answer_without_a_question_is_kept_as_data(
    tmp_path: pathlib.Path, capsys: Any
) -> None:
    """msm 10301's real answer has no question section; the table says what was asked."""
    store = tmp_path / "s.sqlite"
    code = cli.main(
        ["import", "atlas", "--json", "--store", str(store), str(FIXTURES / "builtin-10301.json")]
    )
    counts = json.loads(capsys.readouterr().out)
    assert code == 0 and counts["records"] == {"root-dns": 1} and counts["skipped"] == {}
    opened = open_store(str(store))
    try:
        (record,) = list(opened.iter_records())
    finally:
        opened.close()
    k_root = next(s for s in roothints.load_hints() if s.letter == "k").ipv4[0]
    assert record.target == rec.RootTarget(
        letter="k", name="k.root-servers.net.", address=k_root, family="ipv4"
    )
    assert isinstance(record.result, rec.RootResult)
    (query,) = record.result.queries
    assert (query.qname, query.qclass, query.qtype) == ("hostname.bind.", "CH", "TXT")
    assert query.rcode == "NOTIMP" and query.size_bytes == 12 and query.rtt_seconds == 0.001282
    assert record.result.identity is None or record.result.identity.hostname_bind is None


@pytest.mark.parametrize("flag", [[], ["--measurement", "10301"]])
def test_builtins_flag_reads_every_table_id(
    atlas_server: Any, tmp_path: pathlib.Path, capsys: Any, flag: list[str]
) -> None:
    (result,) = _results(FIXTURES / "builtin-10301.json")
    atlas_server.add([result])
    config = tmp_path / "publiccore.toml"
    config.write_text("[atlas]\nwindow_seconds = 3600\nbackoff_seconds = 0.01\n")
    start = result["timestamp"] - result["timestamp"] % 3600
    argv = ["import", "atlas", "--json", "--config", str(config), "--builtins", *flag]
    argv += ["--api", atlas_server.url, "--store", str(tmp_path / "s.sqlite")]
    assert cli.main([*argv, "--start", str(start), "--stop", str(start + 3600)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["stored"] == 1
    # One window per built-in, each id once.
    assert atlas_server.requests["results"] == len(builtins.BUILTINS)
