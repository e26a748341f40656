"""One TOML file → typed settings.

Every setting has a default; ``publiccore config show`` prints the effective ones.

The file is found at ``--config FILE``, else ``$PUBLICCORE_CONFIG``, else
``$XDG_CONFIG_HOME/publiccore/publiccore.toml`` when it exists; otherwise the defaults apply.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
import typing
from typing import Any

from publiccore.errors import ConfigError


def data_home() -> pathlib.Path:
    """Where publiccore keeps its state by default (``$XDG_DATA_HOME/publiccore``)."""
    base = os.environ.get("XDG_DATA_HOME") or str(pathlib.Path.home() / ".local" / "share")
    return pathlib.Path(base) / "publiccore"


def parse_listen(text: str) -> tuple[str, int]:
    """Split a listen address ``HOST:PORT`` (``[v6]:PORT`` for IPv6); raise ValueError."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    number = int(port)
    if not 0 <= number < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, number


def _default_store() -> str:
    return str(data_home() / "publiccore.sqlite")


def _default_spool() -> str:
    return str(data_home() / "spool.sqlite")


@dataclasses.dataclass(slots=True)
class ProbeSettings:
    """Identity of this probe as registered with the collector."""

    id: str = "local"
    country: str = ""
    asn: int = 0
    token: str = ""
    collector_url: str = ""


@dataclasses.dataclass(slots=True)
class RootSettings:
    """The root-server measurer (RSSAC047-aligned defaults)."""

    hints: str = ""  # empty: the bundled IANA named.root
    anchors: str = ""  # empty: the bundled IANA root-anchors.xml
    timeout_seconds: float = 4.0
    concurrency: int = 64
    udp_payload_bytes: int = 1232
    interval_seconds: float = 300.0
    start_delay_max_seconds: float = 60.0


@dataclasses.dataclass(slots=True)
class TracerouteSettings:
    interval_seconds: float = 3600.0
    max_ttl: int = 30
    timeout_seconds: float = 2.0
    targets: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class StoreSettings:
    """``path`` for SQLite; ``url`` (postgresql://…) selects PostgreSQL when set."""

    path: str = dataclasses.field(default_factory=_default_store)
    url: str = ""


@dataclasses.dataclass(slots=True)
class AgentSettings:
    spool_path: str = dataclasses.field(default_factory=_default_spool)
    spool_quota_bytes: int = 100 * 1024 * 1024
    upload_batch_records: int = 500
    upload_interval_seconds: float = 10.0
    backoff_max_seconds: float = 600.0
    metrics_listen: str = "127.0.0.1:9478"  # empty: no local /metrics


@dataclasses.dataclass(slots=True)
class ServeSettings:
    listen: str = "127.0.0.1:8478"
    max_body_bytes: int = 5 * 1024 * 1024
    max_future_seconds: float = 300.0
    rate_limit_requests_per_minute: float = 120.0
    rate_limit_burst: int = 30
    aggregate_interval_seconds: float = 30.0


@dataclasses.dataclass(slots=True)
class BgpSettings:
    full_feed_ratio: float = 0.75
    full_feed_min_ipv4: int = 0  # absolute thresholds (IODA: 400000 / 10000); 0 = ratio only
    full_feed_min_ipv6: int = 0
    visibility_threshold: float = 0.5
    bin_seconds: int = 300
    delegated: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class AggregateSettings:
    sites: str = ""  # root site table (TOML); empty: the bundled publiccore/data/root_sites.toml
    root_window_seconds: float = 900.0
    paths_window_seconds: float = 86400.0
    max_asn_share: float = 0.25


@dataclasses.dataclass(slots=True)
class EventsSettings:
    extra_files: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class ImpactSettings:
    """Event impact and daily series (M-impact, M-profile in docs/methodology.md)."""

    before_days: int = 14
    after_days: int = 14
    guard_days: int = 1
    min_days: int = 7  # valid days needed on each side
    resamples: int = 2000  # block bootstrap resamples
    block_days: int = 3  # moving-block length
    placebo_count: int = 200
    placebo_span_days: int = 365  # placebo dates drawn within this many days of the event
    seed: int = 20261201
    change_point_penalty: float = 3.0  # PELT penalty = this × sigma² × ln(n)
    change_point_min_days: int = 3
    change_point_window_days: int = 7  # change points this close to an event are listed with it
    min_records: int = 20  # a root day with fewer records is a gap
    min_probes: int = 1
    min_full_feed_peers: int = 1
    min_traces: int = 10


@dataclasses.dataclass(slots=True)
class Settings:
    probe: ProbeSettings = dataclasses.field(default_factory=ProbeSettings)
    root: RootSettings = dataclasses.field(default_factory=RootSettings)
    traceroute: TracerouteSettings = dataclasses.field(default_factory=TracerouteSettings)
    store: StoreSettings = dataclasses.field(default_factory=StoreSettings)
    agent: AgentSettings = dataclasses.field(default_factory=AgentSettings)
    serve: ServeSettings = dataclasses.field(default_factory=ServeSettings)
    bgp: BgpSettings = dataclasses.field(default_factory=BgpSettings)
    aggregate: AggregateSettings = dataclasses.field(default_factory=AggregateSettings)
    events: EventsSettings = dataclasses.field(default_factory=EventsSettings)
    impact: ImpactSettings = dataclasses.field(default_factory=ImpactSettings)
    source: str = ""  # which file these came from ("" = defaults only)


def config_path(explicit: str | None = None) -> pathlib.Path | None:
    """Return the configuration file to read, or None to use the defaults."""
    if explicit:
        return pathlib.Path(explicit)
    env = os.environ.get("PUBLICCORE_CONFIG")
    if env:
        return pathlib.Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or str(pathlib.Path.home() / ".config")
    candidate = pathlib.Path(base) / "publiccore" / "publiccore.toml"
    return candidate if candidate.exists() else None


def load(path: str | os.PathLike[str] | None = None) -> Settings:
    """Read settings from ``path`` (see module doc for the search order); raise ConfigError."""
    chosen = config_path(os.fspath(path) if path else None)
    if chosen is None:
        return Settings()
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config {chosen}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {chosen} is not valid TOML: {exc}") from None
    settings = from_mapping(data)
    settings.source = str(chosen)
    return settings


def from_mapping(data: dict[str, Any]) -> Settings:
    """Build settings from a decoded TOML table, rejecting unknown keys and wrong types."""
    return _build(Settings, data, "")


def _build(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"[{path}] must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    obj = cls()
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in names:
            raise ConfigError(f"unknown setting {where}")
        setattr(obj, key, _coerce(hints[key], value, where))
    return obj


def _coerce(tp: Any, value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, where)  # type: ignore[arg-type]
    if typing.get_origin(tp) is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where} must be a list of strings")
        return list(value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if tp is str and isinstance(value, str):
        return value
    if tp is bool and isinstance(value, bool):
        return value
    raise ConfigError(f"{where} must be {getattr(tp, '__name__', tp)}, got {type(value).__name__}")


def to_toml(settings: Settings) -> str:
    """Render the effective settings as TOML (secrets masked)."""
    lines: list[str] = []
    if settings.source:
        lines.append(f"# from {settings.source}")
    else:
        lines.append("# defaults (no configuration file)")
    for section in dataclasses.fields(settings):
        if section.name == "source":
            continue
        lines.append(f"\n[{section.name}]")
        table = getattr(settings, section.name)
        for f in dataclasses.fields(table):
            value = getattr(table, f.name)
            if f.name == "token" and value:
                value = "***"
            lines.append(f"{f.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
