"""``publiccore import atlas FILE… --probes-api [--api URL]``: probe metadata of a file import
from the Atlas probes API (a local server, conftest.py, serving the real probe objects of the
file).
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

from publiccore import records as rec
from publiccore.app import cli
from publiccore.store import open_store

L_ROOT = "ripe-atlas-monitor/1071935.json"


def _records(store_path: pathlib.Path) -> list[rec.Record]:
    store = open_store(str(store_path))
    try:
        return list(store.iter_records())
    finally:
        store.close()


def _probe_objects(atlas_dir: pathlib.Path) -> dict[int, dict[str, Any]]:
    data = json.loads((atlas_dir / L_ROOT).read_text())
    return {p["id"]: p for p in data["probes"]["results"]}


def test_unknown_probes_are_looked_up_and_the_rest_counted(
    atlas_server: Any, atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    probes = _probe_objects(atlas_dir)
    assert len(probes) == 5
    served = sorted(probes)[:3]  # the API knows three of the five probes
    for probe_id in served:
        atlas_server.probes[probe_id] = probes[probe_id]
    store = tmp_path / "s.sqlite"
    argv = ["import", "atlas", "--store", str(store), str(atlas_dir / L_ROOT)]
    code = cli.main([*argv, "--probes-api", "--api", atlas_server.url])
    out, err = capsys.readouterr()
    assert code == 0
    # The count of probes without a country is printed (the two the API does not know).
    assert out.rstrip().endswith("probes without a country: 2")
    assert f"probes looked up in {atlas_server.url}: 5 asked, 3 found" in err
    assert sorted(atlas_server.probe_ids_asked) == sorted(probes)  # each asked once
    assert atlas_server.requests["probes"] == 2  # three found, two a page
    got = {r.probe.id: r.probe for r in _records(store)}
    assert len(got) == 5
    for probe_id, obj in probes.items():
        ref = got[f"atlas-{probe_id}"]
        if probe_id in served:
            assert ref == rec.ProbeRef(
                id=f"atlas-{probe_id}", asn=obj["asn_v4"], country=obj["country_code"]
            )
        else:  # imported with none (absent, not guessed)
            assert ref.country is None and ref.asn is None


def test_probes_listed_in_a_file_are_not_asked_for(
    atlas_server: Any, atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    probes = _probe_objects(atlas_dir)
    first, *rest = sorted(probes)
    listed = tmp_path / "probes.json"
    listed.write_text(json.dumps({"results": [probes[first]]}))
    for probe_id in rest:
        atlas_server.probes[probe_id] = probes[probe_id]
    argv = ["import", "atlas", "--json", "--store", str(tmp_path / "s.sqlite")]
    argv += ["--probes", str(listed), "--api", atlas_server.url, "--probes-api"]
    assert cli.main([*argv, str(atlas_dir / L_ROOT)]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["probes_without_country"] == 0 and counts["stored"] == 5
    assert sorted(atlas_server.probe_ids_asked) == rest


def test_without_probes_api_nothing_is_asked(
    atlas_server: Any, atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    argv = ["import", "atlas", "--json", "--store", str(tmp_path / "s.sqlite")]
    assert cli.main([*argv, "--api", atlas_server.url, str(atlas_dir / L_ROOT)]) == 0
    assert json.loads(capsys.readouterr().out)["probes_without_country"] == 5
    assert atlas_server.requests["probes"] == 0


def test_probes_api_failing_is_one_clear_error(
    atlas_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: Any
) -> None:
    config = tmp_path / "publiccore.toml"
    argv = ["import", "atlas", "--config", str(config), "--store", str(tmp_path / "s.sqlite")]
    # Port 9 on loopback (discard): nothing listens there, so the connection is refused.
    config.write_text('[atlas]\nretries = 0\napi_url = "http://127.0.0.1:9"\n')
    code = cli.main([*argv, "--probes-api", str(atlas_dir / L_ROOT)])  # [atlas] api_url
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("publiccore: error: Atlas API http://127.0.0.1:9/api/v2/probes/")
    assert len(err.strip().splitlines()) == 1


def test_probes_api_with_measurement_is_refused(tmp_path: pathlib.Path, capsys: Any) -> None:
    argv = ["import", "atlas", "--store", str(tmp_path / "s.sqlite"), "--measurement", "1"]
    assert cli.main([*argv, "--start", "0", "--probes-api"]) == 1
    assert "--probes-api is for file imports" in capsys.readouterr().err
