"""One TOML file → typed settings.

Every setting has a default and a valid range (``RANGES``, checked at load with a one-line error
naming the setting); ``publiccore config show`` prints the effective ones.

The file is found at ``--config FILE``, else ``$PUBLICCORE_CONFIG``, else
``$XDG_CONFIG_HOME/publiccore/publiccore.toml`` when it exists; otherwise the defaults apply.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import tomllib
import typing
from collections.abc import Callable
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
    # RSSAC047 §5.3: share of rounds that also ask www.rssac047-test.<random>. (NXDOMAIN)
    negative_query_share: float = 0.1


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
    # connection limits (docs/ingest.md "Limits"): a slow or idle client is closed after these
    header_timeout_seconds: float = 10.0  # from connect to the end of the request headers
    body_timeout_seconds: float = 30.0  # longest wait for the next piece of a body
    keepalive_timeout_seconds: float = 15.0  # idle time between requests on one connection
    max_connections: int = 512  # open connections per serve process (beyond: closed at once)
    max_connections_per_address: int = 32  # open connections from one source address
    # addresses the per-address cap does not apply to: a reverse proxy in front (on this host)
    per_address_exempt: list[str] = dataclasses.field(default_factory=lambda: ["127.0.0.1", "::1"])


@dataclasses.dataclass(slots=True)
class BgpSettings:
    full_feed_ratio: float = 0.75
    full_feed_min_ipv4: int = 0  # absolute thresholds (IODA: 400000 / 10000); 0 = ratio only
    full_feed_min_ipv6: int = 0
    visibility_threshold: float = 0.5
    bin_seconds: int = 300
    delegated: list[str] = dataclasses.field(default_factory=list)
    follow: BgpFollowSettings = dataclasses.field(default_factory=lambda: BgpFollowSettings())
    live: BgpLiveSettings = dataclasses.field(default_factory=lambda: BgpLiveSettings())


def _default_bgp_cache() -> str:
    return str(data_home() / "bgp-cache")


def _check_ranges(obj: Any, ranges: dict[str, tuple[float, float]], section: str) -> None:
    """Raise ConfigError for a numeric setting of ``obj`` outside its (low, high) range."""
    for name, (low, high) in ranges.items():
        value = getattr(obj, name)
        if not low <= value <= high:
            raise ConfigError(f"{section}.{name} must be between {low:g} and {high:g}, not {value}")


@dataclasses.dataclass(slots=True)
class BgpFollowSettings:
    """``[bgp.follow]``: the RIS / RouteViews archive follower (``publiccore bgp follow``)."""

    enabled: bool = False  # ``publiccore run`` starts the follower (downloads GB a day)
    ris: str = "https://data.ris.ripe.net"
    routeviews: str = "https://archive.routeviews.org"
    collectors: list[str] = dataclasses.field(default_factory=lambda: ["rrc00", "route-views2"])
    poll_seconds: float = 60.0
    grace_seconds: float = 3600.0  # a file this late past its slot counts as missing
    lookback_seconds: float = 86400.0  # where a follower without --since starts
    cache_dir: str = dataclasses.field(default_factory=_default_bgp_cache)
    cache_quota_bytes: int = 20 * 1024**3
    keep: bool = False  # keep processed files in the cache
    connections_per_host: int = 2
    timeout_seconds: float = 120.0  # connect, and between two reads of a body
    retries: int = 4
    backoff_seconds: float = 2.0
    max_attempts: int = 5  # polls a failing file is tried in before it stays failed
    workers: int = 2  # processes (collectors are spread over them, each keeps its RIB state)
    lease_seconds: float = 900.0  # a claim not renewed for this long is taken over
    reader: str = "bgpdump"

    def validate(self) -> None:
        """Raise ConfigError for a value outside its range."""
        _check_ranges(
            self,
            {
                "poll_seconds": (1, 86400),
                "grace_seconds": (0, 7 * 86400),
                "lookback_seconds": (0, 366 * 86400),
                "cache_quota_bytes": (1 << 20, 1 << 50),
                "connections_per_host": (1, 64),
                "timeout_seconds": (0.1, 3600),
                "retries": (0, 20),
                "backoff_seconds": (0, 600),
                "max_attempts": (1, 1000),
                "workers": (1, 256),
                "lease_seconds": (1, 86400),
            },
            "bgp.follow",
        )
        if self.reader not in ("auto", "bgpdump", "bgpstream"):
            raise ConfigError("bgp.follow.reader must be auto, bgpdump or bgpstream")


@dataclasses.dataclass(slots=True)
class BgpLiveSettings:
    """``[bgp.live]``: the RIS Live WebSocket client (``publiccore bgp live``)."""

    url: str = "wss://ris-live.ripe.net/v1/ws/?client=publiccore"
    prefixes: list[str] = dataclasses.field(default_factory=list)  # besides the root prefixes
    withdrawn_peers: int = 3  # a withdrawal seen by this many peers becomes an observation
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 60.0
    heartbeat_seconds: float = 30.0
    snapshot_seconds: float = 60.0  # how often the peer counts are stored between events
    # a restart takes up the per-peer state saved within this many seconds (0: never)
    seed_max_age_seconds: float = 900.0
    # without it, the archive follower's newest state of the RIS collectors in [bgp.follow]
    # collectors seeds the start when its file is at most this old (0: never)
    follower_seed_max_age_seconds: float = 3600.0

    def validate(self) -> None:
        """Raise ConfigError for a value outside its range."""
        _check_ranges(
            self,
            {
                "withdrawn_peers": (1, 10000),
                "backoff_seconds": (0, 600),
                "backoff_max_seconds": (0, 3600),
                "heartbeat_seconds": (1, 3600),
                "snapshot_seconds": (1, 86400),
                "seed_max_age_seconds": (0, 86400 * 7),
                "follower_seed_max_age_seconds": (0, 86400 * 7),
            },
            "bgp.live",
        )


@dataclasses.dataclass(slots=True)
class AggregateSettings:
    sites: str = ""  # root site table (TOML); empty: the bundled publiccore/data/root_sites.toml
    root_window_seconds: float = 900.0
    paths_window_seconds: float = 86400.0
    max_asn_share: float = 0.25
    # the sources root figures rest on (docs/metrics.md): volunteer probes unless an operator
    # lists RIPE Atlas too (or alone); figures never mix sources silently
    sources: list[str] = dataclasses.field(default_factory=lambda: ["volunteer"])
    # RSSAC047 publication latency on /metrics: the serial changes of this period (RSSAC047
    # reports a month; 48 h holds about four root zones)
    publication_period_seconds: float = 172800.0
    # where ``publiccore root zone fetch`` downloads the root zone (RSSAC047 correctness)
    root_zone_url: str = "https://www.internic.net/domain/root.zone"


@dataclasses.dataclass(slots=True)
class AtlasSettings:
    """RIPE Atlas import and follow (docs/atlas.md); ranges in ``RANGES``."""

    api_url: str = "https://atlas.ripe.net"  # base URL; /api/v2/... is appended
    key: str = ""  # API key (only needed for non-public measurements)
    follow_interval_seconds: float = 300.0  # 1 s … 1 day
    window_seconds: float = 3600.0  # one results request covers this much time: 60 s … 1 day
    lag_seconds: float = 900.0  # re-read this much before the position (late results): 0 … 1 day
    batch_records: int = 1000  # records per store transaction: 1 … 100000
    retries: int = 5  # attempts after a 429 / 5xx: 0 … 20
    backoff_seconds: float = 1.0  # first retry delay, doubled each time: 0.01 … 600
    backoff_max_seconds: float = 120.0  # 0.01 … 3600
    timeout_seconds: float = 120.0  # one HTTP request: 1 … 3600

    def check(self) -> None:
        """Hold these settings to ``RANGES`` again (after command-line overrides)."""
        for f in dataclasses.fields(self):
            where = f"atlas.{f.name}"
            problem = RANGES[where](getattr(self, f.name))
            if problem is not None:
                value = getattr(self, f.name)
                raise ConfigError(f"{where} = {value!r} is out of range: must be {problem}")


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
    atlas: AtlasSettings = dataclasses.field(default_factory=AtlasSettings)
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
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config {chosen} is not UTF-8 text (byte {exc.start}); TOML files are UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {chosen} is not valid TOML: {exc}") from None
    settings = from_mapping(data)
    settings.source = str(chosen)
    return settings


def from_mapping(data: dict[str, Any]) -> Settings:
    """Build settings from a decoded TOML table, rejecting unknown keys and wrong types.

    Every setting is then held to its valid range (``RANGES``); raises ConfigError naming the
    first one outside it.
    """
    settings: Settings = _build(Settings, data, "")
    check_ranges(settings)
    return settings


# --- valid ranges ------------------------------------------------------------------------------

Check = Callable[[Any], str | None]  # the value → None when valid, else what it must be


def _number(low: float, high: float, *, low_open: bool = False) -> Check:
    def text(bound: float) -> str:
        return f"{int(bound)}" if bound == int(bound) else f"{bound:g}"

    shown = f"{'>' if low_open else '>='} {text(low)} and <= {text(high)}"

    def check(value: Any) -> str | None:
        ok = (low < value if low_open else low <= value) and value <= high  # False for NaN
        return None if ok else f"a number {shown}"

    return check


def _listen(empty_ok: bool) -> Check:
    def check(value: Any) -> str | None:
        if empty_ok and value == "":
            return None
        try:
            parse_listen(value)
        except ValueError:
            return "HOST:PORT" + (" or empty" if empty_ok else "")
        return None

    return check


def _url(*schemes: str) -> Check:
    def check(value: Any) -> str | None:
        if value == "" or (value.split("://", 1)[0] in schemes and "://" in value):
            return None
        return "empty or a URL starting " + " or ".join(f"{s}://" for s in schemes)

    return check


def _country(value: Any) -> str | None:
    from publiccore.domains import is_country  # the pycountry table, read when needed

    return (
        None if value == "" or is_country(value.upper()) else "empty or an ISO 3166-1 alpha-2 code"
    )


def _sources(value: Any) -> str | None:
    from publiccore.records import SOURCE_NAMES

    if not isinstance(value, list) or not value:
        return f"a non-empty list of sources out of {', '.join(SOURCE_NAMES)}"
    unknown = [v for v in value if v not in SOURCE_NAMES]
    if unknown or len(set(value)) != len(value):
        return f"a list of distinct sources out of {', '.join(SOURCE_NAMES)}"
    return None


def _addresses(value: Any) -> str | None:
    import ipaddress

    for item in value:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            return f"a list of IP addresses ({item[:60]!r} is not one)"
    return None


def _text(limit: int, *, empty_ok: bool = True) -> Check:
    def check(value: Any) -> str | None:
        if (not empty_ok and not value) or len(value) > limit or not value.isprintable():
            return f"{'non-empty ' if not empty_ok else ''}printable text of <= {limit} characters"
        return None

    return check


_DAY = 86_400.0
_YEAR = 366 * _DAY
_BIG = float(2**53)
_ANY_PATH = _text(4096)
RANGES: dict[str, Check] = {
    "probe.id": _text(64, empty_ok=False),
    "probe.country": _country,
    "probe.asn": _number(0, 2**32 - 1),
    "probe.token": _text(256),
    "probe.collector_url": _url("http", "https"),
    "root.hints": _ANY_PATH,
    "root.anchors": _ANY_PATH,
    "root.timeout_seconds": _number(0, 120, low_open=True),
    "root.concurrency": _number(1, 4096),
    "root.udp_payload_bytes": _number(512, 65535),
    "root.interval_seconds": _number(0, _DAY, low_open=True),
    "root.start_delay_max_seconds": _number(0, _DAY),
    "root.negative_query_share": _number(0, 1),
    "traceroute.interval_seconds": _number(0, _DAY, low_open=True),
    "traceroute.max_ttl": _number(1, 255),
    "traceroute.timeout_seconds": _number(0, 120, low_open=True),
    "traceroute.targets": lambda value: None,  # each is checked where it is parsed
    "store.path": _ANY_PATH,
    "store.url": _url("postgresql", "postgres"),
    "agent.spool_path": _ANY_PATH,
    "agent.spool_quota_bytes": _number(4096, 2**50),
    "agent.upload_batch_records": _number(1, 100_000),
    "agent.upload_interval_seconds": _number(0, _DAY, low_open=True),
    "agent.backoff_max_seconds": _number(0, _DAY, low_open=True),
    "agent.metrics_listen": _listen(empty_ok=True),
    "serve.listen": _listen(empty_ok=False),
    "serve.max_body_bytes": _number(1024, 2**30),
    "serve.max_future_seconds": _number(0, 7 * _DAY),
    "serve.rate_limit_requests_per_minute": _number(0, _BIG),
    "serve.rate_limit_burst": _number(0, 2**31),
    "serve.aggregate_interval_seconds": _number(0.05, _DAY),
    "serve.header_timeout_seconds": _number(0, 300, low_open=True),
    "serve.body_timeout_seconds": _number(0, 300, low_open=True),
    "serve.keepalive_timeout_seconds": _number(0, 3600, low_open=True),
    "serve.max_connections": _number(1, 1_000_000),
    "serve.max_connections_per_address": _number(1, 1_000_000),
    "serve.per_address_exempt": _addresses,
    "bgp.full_feed_ratio": _number(0, 1, low_open=True),
    "bgp.full_feed_min_ipv4": _number(0, 2**32),
    "bgp.full_feed_min_ipv6": _number(0, 2**32),
    "bgp.visibility_threshold": _number(0, 1, low_open=True),
    "bgp.bin_seconds": _number(1, _DAY),
    "bgp.delegated": lambda value: None,  # paths, each read when used
    # nested sections hold their own ranges (``validate``, run when the section is read)
    "bgp.follow": lambda value: None,
    "bgp.live": lambda value: None,
    "aggregate.sites": _ANY_PATH,
    "aggregate.root_window_seconds": _number(1, _YEAR),
    "aggregate.paths_window_seconds": _number(1, 10 * _YEAR),
    "aggregate.max_asn_share": _number(0, 1, low_open=True),
    "aggregate.sources": _sources,
    "aggregate.publication_period_seconds": _number(300, _YEAR),
    "aggregate.root_zone_url": _url("http", "https"),
    "events.extra_files": lambda value: None,  # each file is validated when loaded
    "atlas.api_url": _url("http", "https"),
    "atlas.key": _text(256),
    "atlas.follow_interval_seconds": _number(1, _DAY),
    "atlas.window_seconds": _number(60, _DAY),
    "atlas.lag_seconds": _number(0, _DAY),
    "atlas.batch_records": _number(1, 100_000),
    "atlas.retries": _number(0, 20),
    "atlas.backoff_seconds": _number(0.01, 600),
    "atlas.backoff_max_seconds": _number(0.01, 3600),
    "atlas.timeout_seconds": _number(1, 3600),
    "impact.before_days": _number(1, 366),
    "impact.after_days": _number(1, 366),
    "impact.guard_days": _number(0, 60),
    "impact.min_days": _number(1, 366),
    "impact.resamples": _number(10, 1_000_000),
    "impact.block_days": _number(1, 60),
    "impact.placebo_count": _number(0, 100_000),
    "impact.placebo_span_days": _number(1, 10 * 366),
    "impact.seed": _number(0, 2**63),
    "impact.change_point_penalty": _number(0, 1e6, low_open=True),
    "impact.change_point_min_days": _number(1, 366),
    "impact.change_point_window_days": _number(0, 366),
    "impact.min_records": _number(0, 10**9),
    "impact.min_probes": _number(0, 10**9),
    "impact.min_full_feed_peers": _number(0, 10**6),
    "impact.min_traces": _number(0, 10**9),
}


def check_ranges(settings: Settings) -> None:
    """Hold every setting to its range in ``RANGES``; raise ConfigError naming the first."""
    for section in dataclasses.fields(settings):
        if section.name == "source":
            continue
        table = getattr(settings, section.name)
        for f in dataclasses.fields(table):
            where = f"{section.name}.{f.name}"
            value = getattr(table, f.name)
            problem = RANGES[where](value)
            if problem is not None:
                shown = repr(value) if not isinstance(value, str) else repr(value[:80])
                raise ConfigError(f"{where} = {shown} is out of range: must be {problem}")


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
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
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
        _toml_table(lines, section.name, getattr(settings, section.name))
    return "\n".join(lines) + "\n"


def _toml_table(lines: list[str], name: str, table: Any) -> None:
    lines.append(f"\n[{name}]")
    nested = []
    for f in dataclasses.fields(table):
        value = getattr(table, f.name)
        if dataclasses.is_dataclass(value):
            nested.append((f"{name}.{f.name}", value))
            continue
        if f.name in ("token", "key") and value:
            value = "***"
        lines.append(f"{f.name} = {_toml_value(value)}")
    for sub, value in nested:
        _toml_table(lines, sub, value)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'
