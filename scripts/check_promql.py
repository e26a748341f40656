#!/usr/bin/env python3
"""Check that every PromQL expression of the dashboards and alert rules returns data.

Extracts the expressions of every panel target, annotation and query variable from the Grafana
dashboards (JSON) and every rule from the Prometheus rule files, substitutes the dashboard
variables (``--var country=NL``; ``$__rate_interval`` and friends get fixed values), and runs
each as an instant query against a Prometheus HTTP API. Prints one line per expression and exits
1 when any expression fails or returns no data.

    python scripts/check_promql.py --prometheus http://127.0.0.1:9090 \\
        --dashboards deploy/grafana/dashboards --rules deploy/prometheus/rules --var country=NL
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "30s",
    "__range": "1h",
    "__range_s": "3600",
    "__interval_ms": "30000",
}
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")


@dataclasses.dataclass(frozen=True)
class Expression:
    """One expression and where it came from (file, panel or rule)."""

    source: str
    expr: str


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """Replace ``$name``, ``${name}`` and ``[[name]]`` with the variable values."""
    values = {**BUILTINS, **variables}

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in values:
            raise KeyError(f"no value for dashboard variable ${name}")
        return values[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)", one, expr)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows


def dashboard_expressions(path: pathlib.Path) -> Iterator[Expression]:
    """Panel targets, Prometheus annotations and query variables of one dashboard."""
    board = json.loads(path.read_text(encoding="utf-8"))
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if target.get("expr"):
                yield Expression(
                    f"{path.name}: {panel.get('title')} [{target.get('refId')}]", target["expr"]
                )
    for annotation in board.get("annotations", {}).get("list", []):
        if annotation.get("expr"):
            yield Expression(
                f"{path.name}: annotation {annotation.get('name')}", annotation["expr"]
            )
    for variable in board.get("templating", {}).get("list", []):
        query = variable.get("query")
        text = query.get("query") if isinstance(query, dict) else query
        if variable.get("type") == "query" and isinstance(text, str):
            match = _LABEL_VALUES.match(text)
            if match:  # label_values(selector, label): the selector must return data
                yield Expression(f"{path.name}: variable {variable.get('name')}", match.group(1))


def rule_expressions(path: pathlib.Path) -> Iterator[Expression]:
    """Every alerting and recording rule of one rule file."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for group in data.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            yield Expression(f"{path.name}: {group.get('name')}/{name}", str(rule["expr"]))


def collect(dashboards: pathlib.Path | None, rules: pathlib.Path | None) -> list[Expression]:
    """All expressions from the dashboard JSON files and rule files (test files skipped)."""
    found: list[Expression] = []
    if dashboards is not None:
        for path in sorted(dashboards.glob("*.json")):
            found.extend(dashboard_expressions(path))
    if rules is not None:
        for path in sorted(rules.glob("*.y*ml")):
            if not path.stem.endswith("_test"):
                found.extend(rule_expressions(path))
    return found


def query(base_url: str, expr: str, *, timeout: float = 10.0) -> tuple[bool, int, str]:
    """Run an instant query; return (ok, number of results, error text)."""
    url = f"{base_url.rstrip('/')}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            return False, 0, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return False, 0, str(exc)
    if body.get("status") != "success":
        return False, 0, f"{body.get('errorType')}: {body.get('error')}"
    result = body["data"]["result"]
    count = len(result) if isinstance(result, list) else 1
    return True, count, ""


def check(base_url: str, expressions: list[Expression], variables: Mapping[str, str]) -> list[str]:
    """Run every expression; return the failures as printable lines."""
    failures: list[str] = []
    for item in expressions:
        try:
            expr = substitute(item.expr, variables)
        except KeyError as exc:
            failures.append(f"FAIL {item.source}: {exc.args[0]}")
            continue
        ok, count, error = query(base_url, expr)
        if not ok:
            failures.append(f"FAIL {item.source}: {error}\n     {expr}")
        elif count == 0:
            failures.append(f"EMPTY {item.source}\n     {expr}")
        else:
            print(f"ok   {item.source}: {count} series")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prometheus", required=True, help="Prometheus base URL")
    parser.add_argument("--dashboards", type=pathlib.Path, help="folder of dashboard JSON")
    parser.add_argument("--rules", type=pathlib.Path, help="folder of rule files")
    parser.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="dashboard variable value (repeatable)",
    )
    args = parser.parse_args(argv)
    variables = dict(v.split("=", 1) for v in args.var)
    expressions = collect(args.dashboards, args.rules)
    if not expressions:
        print("no expressions found", file=sys.stderr)
        return 1
    failures = check(args.prometheus, expressions, variables)
    for line in failures:
        print(line)
    print(f"{len(expressions) - len(failures)} of {len(expressions)} expressions returned data")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
