"""The regulatory-events dataset: load, validate, query.

The bundled ``publiccore/data/regulatory_events.yaml`` (fields in docs/events.md) is validated
on load; operators add their own files (``[events] extra_files``) in the same format. Every
problem raises ``InputError`` naming the file, the event id and the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

import pycountry
import yaml

from publiccore.errors import InputError

KINDS: tuple[str, ...] = (
    "law",
    "regulation",
    "order",
    "shutdown",
    "exercise",
    "international",
    "sanction",
    "institutional",
)
SCOPES: tuple[str, ...] = (
    "dns",
    "routing",
    "gateways",
    "data-localisation",
    "content",
    "shutdown",
    "governance",
    "security",
)
CONFIDENCE: tuple[str, ...] = ("high", "medium")
PRECISIONS: tuple[str, ...] = ("day", "month")
SPECIAL_COUNTRIES: tuple[str, ...] = ("INT", "EU")
_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # with fullmatch: "id\n" is not an id
_MAX_ID_CHARS = 128
# YAML 1.1 reads these unquoted as booleans; no event field is a boolean, so they are refused
_YAML11_BOOLEANS = re.compile(
    r"y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
)


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and unquoted booleans (``NO`` for Norway)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class says so
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_bool(self, node: yaml.ScalarNode) -> bool:
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"unquoted {node.value!r} reads as a boolean; no field is one: quote it",
            node.start_mark,
        )


_StrictLoader.add_constructor(
    "tag:yaml.org,2002:bool",
    _StrictLoader.construct_yaml_bool,
)
_REQUIRED = (
    "id",
    "date",
    "date_precision",
    "country",
    "kind",
    "scope",
    "title",
    "summary",
    "sources",
    "confidence",
)
_OPTIONAL = ("end_date",)


@dataclasses.dataclass(frozen=True, slots=True)
class Event:
    """One regulatory event (see docs/events.md for every field)."""

    id: str
    date: dt.date
    date_precision: str
    country: str
    kind: str
    scope: tuple[str, ...]
    title: str
    summary: str
    sources: tuple[str, ...]
    confidence: str
    end_date: dt.date | None = None

    @property
    def timestamp(self) -> float:
        """The event date at 00:00 UTC as POSIX seconds."""
        return dt.datetime(
            self.date.year, self.date.month, self.date.day, tzinfo=dt.UTC
        ).timestamp()

    @property
    def end_timestamp(self) -> float | None:
        """The end date at 00:00 UTC as POSIX seconds, when sourced."""
        if self.end_date is None:
            return None
        end = self.end_date
        return dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC).timestamp()

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with ISO dates."""
        out: dict[str, Any] = dataclasses.asdict(self)
        out["date"] = self.date.isoformat()
        out["end_date"] = self.end_date.isoformat() if self.end_date else None
        out["scope"] = list(self.scope)
        out["sources"] = list(self.sources)
        return out


def bundled_path() -> pathlib.Path:
    """The events file shipped with publiccore."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "regulatory_events.yaml"))


def is_country(code: str) -> bool:
    """ISO 3166-1 alpha-2 (upper case), or INT / EU."""
    if code in SPECIAL_COUNTRIES:
        return True
    return len(code) == 2 and code.isupper() and pycountry.countries.get(alpha_2=code) is not None


def _date(value: Any, where: str) -> dt.date:
    if isinstance(value, dt.datetime):
        raise InputError(f"{where}: expected a date, got a date and time")
    if isinstance(value, dt.date):
        return value
    if not isinstance(value, str):
        raise InputError(f"{where}: expected 'YYYY-MM-DD', got {type(value).__name__}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InputError(f"{where}: not a valid date: {value!r}") from None


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: expected non-empty text")
    return value


def _text_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{where}: expected a non-empty list")
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value))


def _choice(value: Any, allowed: Sequence[str], where: str) -> str:
    if value not in allowed:
        raise InputError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return str(value)


def parse_event(obj: Any, where: str) -> Event:
    """Validate one decoded event; raise InputError naming ``where``, the id and the field."""
    if not isinstance(obj, dict):
        raise InputError(f"{where}: expected a mapping")
    raw_id = obj.get("id")
    if not isinstance(raw_id, str) or len(raw_id) > _MAX_ID_CHARS or not _ID.fullmatch(raw_id):
        shown = raw_id[:_MAX_ID_CHARS] if isinstance(raw_id, str) else raw_id
        raise InputError(f"{where}: field id: expected a lower-case slug, got {shown!r}")
    at = f"{where}: event {raw_id}: field"
    for key in _REQUIRED:
        if key not in obj:
            raise InputError(f"{at} {key}: missing")
    for key in obj:
        if key not in _REQUIRED and key not in _OPTIONAL:
            raise InputError(f"{at} {key}: unknown field")
    date = _date(obj["date"], f"{at} date")
    end = obj.get("end_date")
    end_date = None if end is None else _date(end, f"{at} end_date")
    if end_date is not None and end_date < date:
        raise InputError(f"{at} end_date: {end_date} is before date {date}")
    precision = _choice(obj["date_precision"], PRECISIONS, f"{at} date_precision")
    if precision == "month" and date.day != 1:
        raise InputError(f"{at} date: with date_precision month the date must be the 1st")
    country = obj["country"]
    if not isinstance(country, str) or not is_country(country):
        raise InputError(f"{at} country: {country!r} is not an ISO 3166-1 alpha-2 code, INT or EU")
    scope = _text_list(obj["scope"], f"{at} scope")
    for item in scope:
        _choice(item, SCOPES, f"{at} scope")
    return Event(
        id=raw_id,
        date=date,
        date_precision=precision,
        country=country,
        kind=_choice(obj["kind"], KINDS, f"{at} kind"),
        scope=scope,
        title=_text(obj["title"], f"{at} title"),
        summary=_text(obj["summary"], f"{at} summary"),
        sources=_text_list(obj["sources"], f"{at} sources"),
        confidence=_choice(obj["confidence"], CONFIDENCE, f"{at} confidence"),
        end_date=end_date,
    )


def load_file(path: str | os.PathLike[str]) -> list[Event]:
    """Read and validate one events file (``events:`` list, or a bare list); raise InputError."""
    chosen = pathlib.Path(path)
    try:
        text = chosen.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read events file {chosen}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"events file {chosen} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        detail = " ".join(str(exc).split())  # one line
        raise InputError(f"events file {chosen} is not valid YAML: {detail}"[:500]) from None
    except RecursionError:
        raise InputError(f"events file {chosen} is nested too deeply") from None
    items = data.get("events") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"{chosen}: expected a top-level 'events:' list")
    events = [parse_event(item, f"{chosen} events[{i}]") for i, item in enumerate(items)]
    _check_unique(events, str(chosen))
    return events


def _check_unique(events: Iterable[Event], where: str) -> None:
    seen: set[str] = set()
    for event in events:
        if event.id in seen:
            raise InputError(f"{where}: event {event.id}: field id: duplicate id")
        seen.add(event.id)


def load(
    extra_files: Iterable[str | os.PathLike[str]] = (), *, bundled: bool = True
) -> list[Event]:
    """The bundled events plus ``extra_files``, sorted by date; ids unique across all files."""
    events: list[Event] = []
    paths = ([bundled_path()] if bundled else []) + [pathlib.Path(p) for p in extra_files]
    for path in paths:
        events.extend(load_file(path))
    _check_unique(events, "events (all files)")
    return sorted(events, key=lambda e: (e.date, e.id))


def select(
    events: Iterable[Event],
    *,
    country: str | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
) -> list[Event]:
    """Events of ``country`` (case-insensitive) whose date is in [since, until)."""
    wanted = country.upper() if country else None
    return [
        e
        for e in events
        if (wanted is None or e.country == wanted)
        and (since is None or e.date >= since)
        and (until is None or e.date < until)
    ]
