"""promtool checks the deployed Prometheus configuration and runs the alert rules' unit tests;
the dashboards are what their generator writes, and the PromQL extraction is checked."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import subprocess
import sys
import types

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"


def load_script(path: pathlib.Path) -> types.ModuleType:
    """Import a script file that is not part of a package."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def promtool(pcdata, *args: str) -> subprocess.CompletedProcess[str]:
    binary = pcdata.need("promtool")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, check=False, cwd=PROMETHEUS
    )


def test_promtool_check_config(pcdata):
    run = promtool(pcdata, "check", "config", "prometheus.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 rule files found" in run.stdout


def test_promtool_check_rules(pcdata):
    run = promtool(pcdata, "check", "rules", "rules/publiccore.yml")
    assert run.returncode == 0, run.stdout + run.stderr


def test_promtool_rule_unit_tests(pcdata):
    run = promtool(pcdata, "test", "rules", "rules/publiccore_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_promtool_baseline_unit_tests(pcdata):
    """The IODA baseline: 7 days off the baseline become the new normal."""
    run = promtool(pcdata, "test", "rules", "rules/publiccore_baseline_test.yml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout


def test_every_alert_has_a_unit_test_and_a_resolved_message():
    rules = yaml.safe_load((PROMETHEUS / "rules" / "publiccore.yml").read_text())
    tests = yaml.safe_load((PROMETHEUS / "rules" / "publiccore_test.yml").read_text())
    tested = {
        case["alertname"]
        for t in tests["tests"]
        for case in t["alert_rule_test"]
        if case.get("exp_alerts")
    }
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {r["alert"] for r in alerts} == tested
    for rule in alerts:
        assert {"summary", "description", "resolved"} <= set(rule["annotations"]), rule["alert"]


def test_dashboards_match_their_generator():
    build = load_script(GRAFANA / "build_dashboards.py")
    for name, text in build.render().items():
        assert (GRAFANA / "dashboards" / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python deploy/grafana/build_dashboards.py"
        )


def test_dashboards_use_the_provisioned_datasource():
    provisioned = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    uid = provisioned["datasources"][0]["uid"]
    for path in (GRAFANA / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])


def test_compose_mounts_existing_files():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    assert set(compose["services"]) == {"collector", "prometheus", "grafana"}
    build = compose["services"]["collector"]["build"]
    assert (REPO / "deploy" / build["context"] / build["dockerfile"]).exists()
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / "deploy" / source).exists(), source


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('up{country="$country"}', 'up{country="RU"}'),
        ("rate(x[$__rate_interval])", "rate(x[1m])"),
        ('x{c="${country}"}', 'x{c="RU"}'),
        ('x{c="[[country]]"}', 'x{c="RU"}'),
    ],
)
def test_check_promql_substitutes_variables(expr, expected):
    check = load_script(REPO / "scripts" / "check_promql.py")
    assert check.substitute(expr, {"country": "RU"}) == expected


def test_check_promql_finds_every_panel_rule_and_variable():
    check = load_script(REPO / "scripts" / "check_promql.py")
    found = check.collect(GRAFANA / "dashboards", PROMETHEUS / "rules")
    sources = [e.source for e in found]
    assert any("variable country" in s for s in sources)
    assert any("annotation Regulatory events" in s for s in sources)
    assert sum("publiccore.yml" in s for s in sources) == 10
    assert not any("publiccore_test" in s for s in sources)
    with pytest.raises(KeyError):
        check.substitute('x{c="$nope"}', {})


def test_every_metric_is_documented():
    from publiccore.exporters.catalogue import METRICS
    from publiccore.exporters.prometheus import LIVE_HELP

    doc = (REPO / "docs" / "metrics.md").read_text(encoding="utf-8")
    for name in [m.name for m in METRICS] + list(LIVE_HELP):
        assert f"`{name}" in doc, name
    for spec in METRICS:
        assert spec.definition.startswith("M-")
        assert f"### {spec.definition} " in (REPO / "docs" / "methodology.md").read_text()
