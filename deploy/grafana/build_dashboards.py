"""Write the publiccore Grafana dashboards (deploy/grafana/dashboards/*.json).

The JSON files are committed (Grafana provisions them as they are); this script is their source.
Edit it, run ``python deploy/grafana/build_dashboards.py``, commit both. A test checks that the
files match this script and that every expression returns data from a real Prometheus.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

DS = {"type": "prometheus", "uid": "prometheus"}
OUT = pathlib.Path(__file__).resolve().parent / "dashboards"
COUNTRY = '{country="$country"}'


class Board:
    """Collects panels on a 24-column grid, left to right, top to bottom."""

    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []
        self.x = self.y = self.row_h = 0

    def add(
        self,
        panel_type: str,
        title: str,
        targets: list[dict[str, Any]],
        *,
        w: int = 12,
        h: int = 8,
        unit: str = "short",
        description: str = "",
        options: dict[str, Any] | None = None,
        transformations: list[Any] | None = None,
        field: dict[str, Any] | None = None,
        units: dict[str, str] | None = None,
    ) -> None:
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        defaults: dict[str, Any] = {"unit": unit}
        defaults.update(field or {})
        panel: dict[str, Any] = {
            "id": len(self.panels) + 1,
            "type": panel_type,
            "title": title,
            "description": description,
            "datasource": DS,
            "gridPos": {"x": self.x, "y": self.y, "w": w, "h": h},
            "targets": [
                dict(t, refId=chr(ord("A") + i), datasource=DS) for i, t in enumerate(targets)
            ],
            "fieldConfig": {
                "defaults": defaults,
                "overrides": [
                    {
                        "matcher": {"id": "byName", "options": name},
                        "properties": [{"id": "unit", "value": unit_name}],
                    }
                    for name, unit_name in (units or {}).items()
                ],
            },
            "options": options or {},
        }
        if transformations:
            panel["transformations"] = transformations
        self.panels.append(panel)
        self.x += w
        self.row_h = max(self.row_h, h)


def ts(expr: str, legend: str = "") -> dict[str, Any]:
    """A range (time series) query."""
    return {"expr": expr, "legendFormat": legend, "range": True, "instant": False}


def table(expr: str) -> dict[str, Any]:
    """An instant query shown as a table."""
    return {"expr": expr, "format": "table", "instant": True, "range": False}


def ratio_thresholds(red: float, yellow: float) -> dict[str, Any]:
    return {
        "min": 0,
        "max": 1,
        "color": {"mode": "thresholds"},
        "thresholds": {
            "mode": "absolute",
            "steps": [
                {"color": "red", "value": None},
                {"color": "yellow", "value": red},
                {"color": "green", "value": yellow},
            ],
        },
    }


COUNTRY_VARIABLE = {
    "name": "country",
    "label": "Country",
    "type": "query",
    "datasource": DS,
    "definition": "label_values(publiccore_aggregate_records, country)",
    "query": {"query": "label_values(publiccore_aggregate_records, country)", "refId": "v"},
    "refresh": 2,
    "sort": 1,
    "multi": False,
    "includeAll": False,
}

EVENT_ANNOTATIONS = [
    {
        "name": "Regulatory events",
        "datasource": DS,
        "enable": True,
        "iconColor": "orange",
        "expr": 'publiccore_regulatory_event_timestamp_seconds{country=~"$country|INT"} * 1000',
        "useValueForTime": True,
        "step": "1h",
        "titleFormat": "{{event}}",
        "textFormat": "{{kind}} ({{country}})",
        "tagKeys": "country,kind,event",
    },
    {
        "name": "Regulatory events (pushed to Grafana)",
        "enable": False,
        "iconColor": "purple",
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "target": {
            "type": "tags",
            "tags": ["publiccore", "country:$country"],
            "matchAny": False,
            "limit": 500,
        },
    },
]


def dashboard(
    uid: str,
    title: str,
    board: Board,
    *,
    variables: list[Any] | None = None,
    annotations: list[Any] | None = None,
    time_from: str = "now-24h",
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["publiccore"],
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "1m",
        "timezone": "utc",
        "time": {"from": time_from, "to": "now"},
        "templating": {"list": variables or []},
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                },
                *(annotations or []),
            ]
        },
        "panels": board.panels,
    }


def overview() -> dict[str, Any]:
    b = Board()
    b.add(
        "stat",
        "Countries with root data",
        [ts('count(publiccore_aggregate_records{kind="root-dns"})')],
        w=6,
        h=4,
    )
    b.add("stat", "Probes active (1 h)", [ts("sum(publiccore_probes_active)")], w=6, h=4)
    b.add(
        "stat",
        "Newest root record",
        [ts('publiccore_newest_record_age_seconds{kind="root-dns"}')],
        w=6,
        h=4,
        unit="s",
    )
    b.add(
        "stat",
        "Newest BGP dump",
        [ts("publiccore_bgp_newest_dump_age_seconds")],
        w=6,
        h=4,
        unit="s",
    )
    names = [
        "root reachability",
        "letters ≥ 96%",
        "RSS k-of-n",
        "integrity iana",
        "IPv4 visibility",
        "IPv4 upstreams (effective)",
        "last event",
        "probes",
        "probe ASNs",
    ]
    exprs = [
        "max by (country) (avg by (country) (publiccore_root_reachable_ratio))",
        "max by (country) (publiccore_root_letters_available)",
        "max by (country) (publiccore_root_system_available_ratio)",
        'max by (country) (publiccore_root_integrity_ratio{outcome="iana"})',
        'max by (country) (publiccore_bgp_country_visibility_ratio{family="ipv4"})',
        'max by (country) (publiccore_bgp_country_upstream_effective_number{family="ipv4"})',
        "max by (country) (publiccore_regulatory_event_timestamp_seconds) * 1000",
        'max by (country) (publiccore_aggregate_probes{kind="root-dns"})',
        'max by (country) (publiccore_aggregate_probe_asns{kind="root-dns"})',
    ]
    rename = {f"Value #{chr(ord('A') + i)}": n for i, n in enumerate(names)}
    b.add(
        "table",
        "Countries",
        [table(e) for e in exprs],
        w=24,
        h=12,
        description="One row per country. Sample size (probes, probe ASNs) beside the figures; "
        "the last event is the newest regulatory event of the country (date).",
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": rename},
            },
        ],
        field={"custom": {"align": "auto"}},
        units={
            "root reachability": "percentunit",
            "RSS k-of-n": "percentunit",
            "integrity iana": "percentunit",
            "IPv4 visibility": "percentunit",
            "last event": "dateTimeAsIsoNoDateIfToday",
        },
        options={"showHeader": True, "sortBy": [{"displayName": "country", "desc": False}]},
    )
    b.add(
        "timeseries",
        "Root reachability by country",
        [ts("avg by (country) (publiccore_root_reachable_ratio)", "{{country}}")],
        unit="percentunit",
    )
    b.add(
        "timeseries",
        "Visible IPv4 address space by country (/24)",
        [ts("publiccore_bgp_country_visible_slash24", "{{country}}")],
    )
    return dashboard("publiccore-overview", "publiccore — Overview", b)


def country() -> dict[str, Any]:
    b = Board()
    b.add(
        "status-history",
        "Root letters: reachability (worst family × transport)",
        [ts(f"min by (letter) (publiccore_root_reachable_ratio{COUNTRY})", "{{letter}}")],
        w=24,
        h=9,
        unit="percentunit",
        field=ratio_thresholds(0.5, 0.96),
        description="M-root-reachability, over the root window (15 min).",
    )
    b.add(
        "stat",
        "Letters meeting RSSAC047 availability (96%)",
        [ts(f"publiccore_root_letters_available{COUNTRY}")],
        w=6,
        h=5,
    )
    b.add(
        "stat",
        "Rounds with ≥ 8 of 13 letters (k-of-n)",
        [ts(f"publiccore_root_system_available_ratio{COUNTRY}")],
        w=6,
        h=5,
        unit="percentunit",
    )
    b.add(
        "stat",
        "Probes / probe ASNs in window",
        [
            ts('publiccore_aggregate_probes{country="$country",kind="root-dns"}', "probes"),
            ts('publiccore_aggregate_probe_asns{country="$country",kind="root-dns"}', "ASNs"),
        ],
        w=6,
        h=5,
    )
    b.add(
        "stat",
        "Largest probe ASN share (before down-weighting)",
        [ts('publiccore_aggregate_top_asn_share{country="$country",kind="root-dns"}')],
        w=6,
        h=5,
        unit="percentunit",
    )
    b.add(
        "timeseries",
        "Median RTT per letter, UDP (RSSAC047 threshold 250 ms)",
        [
            ts(
                'publiccore_root_median_latency_seconds{country="$country",transport="udp"}',
                "{{letter}}",
            )
        ],
        unit="s",
    )
    b.add(
        "timeseries",
        "Median RTT per letter, TCP (RSSAC047 threshold 500 ms)",
        [
            ts(
                'publiccore_root_median_latency_seconds{country="$country",transport="tcp"}',
                "{{letter}}",
            )
        ],
        unit="s",
    )
    b.add(
        "timeseries",
        "RTT 0.9 quantile per letter × family, UDP",
        [
            ts(
                'publiccore_root_rtt_seconds{country="$country",transport="udp",quantile="0.9"}',
                "{{letter}} {{family}}",
            )
        ],
        unit="s",
    )
    b.add(
        "timeseries",
        "Publication latency of the newest serial (threshold 65 min)",
        [ts(f"publiccore_root_publication_latency_seconds{COUNTRY}", "{{letter}}")],
        unit="s",
    )
    b.add(
        "timeseries",
        "Root integrity outcomes",
        [ts(f"publiccore_root_integrity_ratio{COUNTRY}", "{{outcome}}")],
        unit="percentunit",
        field={"custom": {"stacking": {"mode": "normal"}, "fillOpacity": 60}},
    )
    b.add(
        "timeseries",
        "Share answered by an in-country site / unknown site",
        [
            ts(
                'publiccore_root_site_location_ratio{country="$country",outcome="in_country"}',
                "{{letter}} in country",
            ),
            ts(
                'avg(publiccore_root_site_location_ratio{country="$country",outcome="unknown"})',
                "unknown (all letters)",
            ),
        ],
        unit="percentunit",
    )
    b.add(
        "bargauge",
        "Distinct sites per letter",
        [ts(f"publiccore_root_sites{COUNTRY}", "{{letter}}")],
        w=12,
    )
    b.add(
        "timeseries",
        "BGP: visibility of the country's address space",
        [ts(f"publiccore_bgp_country_visibility_ratio{COUNTRY}", "{{family}}")],
        unit="percentunit",
    )
    b.add(
        "timeseries",
        "BGP: visible IPv4 space (/24) and its IODA baseline",
        [
            ts(f"publiccore_bgp_country_visible_slash24{COUNTRY}", "visible"),
            ts(
                f"publiccore:bgp_country_visible_slash24:baseline{COUNTRY}",
                "baseline (24 h median, off-baseline values kept out)",
            ),
        ],
    )
    b.add(
        "timeseries",
        "BGP: prefixes seen by no full-feed peer",
        [ts(f"publiccore_bgp_country_unseen_prefixes{COUNTRY}", "{{family}}")],
    )
    b.add(
        "timeseries",
        "International upstreams: count and effective number",
        [
            ts(f"publiccore_bgp_country_upstreams{COUNTRY}", "upstreams {{family}}"),
            ts(
                f"publiccore_bgp_country_upstream_effective_number{COUNTRY}",
                "effective number {{family}}",
            ),
        ],
    )
    b.add(
        "timeseries",
        "Largest upstream's share",
        [ts(f"publiccore_bgp_country_top_upstream_share{COUNTRY}", "{{family}}")],
        unit="percentunit",
    )
    b.add(
        "timeseries",
        "AS hegemony over the country's space (IHR, top 5) and ASes above 0.1",
        [
            ts(f"publiccore_bgp_country_dependency_ratio{COUNTRY}", "AS{{asn}} {{family}}"),
            ts(f"publiccore_bgp_country_dependent_ases{COUNTRY}", "ASes above 0.1 {{family}}"),
        ],
    )
    b.add(
        "timeseries",
        "Border crossings (traceroute, 24 h)",
        [
            ts(f"publiccore_path_border_crossings_distinct{COUNTRY}", "distinct"),
            ts(f"publiccore_path_border_crossings_effective_number{COUNTRY}", "effective number"),
            ts(f"publiccore_path_traces{COUNTRY}", "traceroutes (sample)"),
            ts(
                f"publiccore_path_traces_left_unmapped{COUNTRY}",
                "traceroutes that left through unmapped space",
            ),
        ],
    )
    b.add(
        "timeseries",
        "Fragmentation profile (M-profile; 0–1, 1 = more fragmented; daily)",
        [ts(f"publiccore_profile_score{COUNTRY}", "{{dimension}}")],
        w=24,
        unit="percentunit",
    )
    b.add(
        "table",
        "Regulatory events",
        [table('publiccore_regulatory_event_timestamp_seconds{country=~"$country"} * 1000')],
        w=24,
        field={"unit": "dateTimeAsIsoNoDateIfToday"},
        transformations=[
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "__name__": True, "instance": True, "job": True}
                },
            }
        ],
    )
    return dashboard(
        "publiccore-country",
        "publiccore — Country",
        b,
        variables=[COUNTRY_VARIABLE],
        annotations=EVENT_ANNOTATIONS,
        time_from="now-7d",
    )


def matrix(value_title: str) -> list[dict[str, Any]]:
    return [
        {
            "id": "groupingToMatrix",
            "options": {
                "columnField": "letter",
                "rowField": "country",
                "valueField": "Value",
                "emptyValue": "null",
            },
        },
        {"id": "organize", "options": {"renameByName": {"country\\letter": value_title}}},
    ]


def root_servers() -> dict[str, Any]:
    b = Board()
    b.add(
        "table",
        "Reachability: country × letter (worst family × transport)",
        [table("min by (country, letter) (publiccore_root_reachable_ratio)")],
        w=24,
        h=10,
        unit="percentunit",
        transformations=matrix("country"),
        field={
            "custom": {"cellOptions": {"type": "color-background"}},
            **ratio_thresholds(0.5, 0.96),
        },
    )
    b.add(
        "table",
        "RSSAC047 availability: country × letter",
        [table("publiccore_root_availability_ratio")],
        w=24,
        h=10,
        unit="percentunit",
        transformations=matrix("country"),
        field={
            "custom": {"cellOptions": {"type": "color-background"}},
            **ratio_thresholds(0.9, 0.96),
        },
    )
    b.add(
        "table",
        "Median UDP latency: country × letter",
        [table('publiccore_root_median_latency_seconds{transport="udp"}')],
        w=24,
        h=10,
        unit="s",
        transformations=matrix("country"),
    )
    b.add(
        "table",
        "Share answered by an in-country site: country × letter",
        [table('publiccore_root_site_location_ratio{outcome="in_country"}')],
        w=12,
        h=10,
        unit="percentunit",
        transformations=matrix("country"),
    )
    b.add(
        "table",
        "Distinct sites seen: country × letter",
        [table("publiccore_root_sites")],
        w=12,
        h=10,
        transformations=matrix("country"),
    )
    b.add(
        "timeseries",
        "Publication latency, worst country per letter",
        [ts("max by (letter) (publiccore_root_publication_latency_seconds)", "{{letter}}")],
        unit="s",
    )
    b.add(
        "timeseries",
        "RSSAC047 publication latency: median over the period's serial changes (RSS ≤ 35 min)",
        [
            ts("publiccore_root_publication_latency_median_seconds", "{{letter}}"),
            ts("publiccore_root_rss_publication_latency_seconds", "RSS"),
        ],
        unit="s",
    )
    b.add(
        "timeseries",
        "Root-server prefix visibility (BGP)",
        [
            ts(
                'publiccore_bgp_prefix_visibility_ratio{prefix_set="root"}',
                "{{letter}} {{family}} {{prefix}}",
            )
        ],
        unit="percentunit",
    )
    b.add(
        "stat",
        "Root prefixes with an unexpected origin",
        [ts("sum(publiccore_bgp_root_prefix_unexpected_origin)")],
        w=12,
        h=5,
    )
    b.add(
        "stat",
        "Letters meeting 96%, worst country",
        [ts("min(publiccore_root_letters_available)")],
        w=12,
        h=5,
    )
    return dashboard("publiccore-root", "publiccore — Root servers", b)


def fleet() -> dict[str, Any]:
    b = Board()
    b.add("stat", "Probes active (1 h)", [ts("sum(publiccore_probes_active)")], w=8, h=4)
    b.add("stat", "Aggregate age", [ts("publiccore_aggregate_age_seconds")], w=8, h=4, unit="s")
    b.add(
        "stat",
        "Aggregate refresh duration",
        [ts("publiccore_aggregate_duration_seconds")],
        w=8,
        h=4,
        unit="s",
    )
    b.add("timeseries", "Probes active by country", [ts("publiccore_probes_active", "{{country}}")])
    b.add(
        "timeseries",
        "Age of the newest data",
        [
            ts("publiccore_newest_record_age_seconds", "{{kind}}"),
            ts("publiccore_bgp_newest_dump_age_seconds", "BGP dump"),
        ],
        unit="s",
    )
    b.add(
        "timeseries",
        "Ingested records per second by kind",
        [ts("sum by (kind) (rate(publiccore_ingest_records_total[$__rate_interval]))", "{{kind}}")],
        unit="reqps",
    )
    b.add(
        "timeseries",
        "Rejected records per second by reason",
        [
            ts(
                "sum by (reason) (rate(publiccore_ingest_rejected_records_total"
                "[$__rate_interval]))",
                "{{reason}}",
            )
        ],
        unit="reqps",
    )
    b.add(
        "timeseries",
        "Records per country in the root window",
        [ts('publiccore_aggregate_records{kind="root-dns"}', "{{country}}")],
    )
    b.add(
        "timeseries",
        "Largest probe ASN share per country (cap 25%)",
        [ts('publiccore_aggregate_top_asn_share{kind="root-dns"}', "{{country}}")],
        unit="percentunit",
    )
    b.add(
        "timeseries",
        "Scrape duration of /metrics",
        [ts('scrape_duration_seconds{job="publiccore"}', "{{instance}}")],
        w=24,
        unit="s",
    )
    return dashboard("publiccore-fleet", "publiccore — Probe fleet", b, time_from="now-6h")


DASHBOARDS = {
    "overview.json": overview,
    "country.json": country,
    "root-servers.json": root_servers,
    "probe-fleet.json": fleet,
}


def render() -> dict[str, str]:
    """File name → JSON text of every dashboard."""
    return {
        name: json.dumps(build(), indent=1, ensure_ascii=False) + "\n"
        for name, build in DASHBOARDS.items()
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
