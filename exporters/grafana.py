"""Regulatory events as Grafana annotations, written idempotently over Grafana's HTTP API.

Each event becomes one organisation-wide annotation tagged ``publiccore``, ``country:XX``,
``kind:K`` and ``event:<id>``. Before writing, the annotation carrying the event's tag is looked
up (``GET /api/annotations?tags=event:<id>``): absent → ``POST /api/annotations``; present but
different → ``PUT /api/annotations/<id>``; identical → nothing. Running it twice changes nothing.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import aiohttp

from publiccore import events as ev
from publiccore.errors import PubliccoreError

TAG = "publiccore"
TIMEOUT_SECONDS = 30.0


class GrafanaError(PubliccoreError):
    """Grafana refused a request or answered something unexpected."""


def event_tag(event_id: str) -> str:
    """The tag that identifies an event's annotation."""
    return f"event:{event_id}"


def annotation(event: ev.Event) -> dict[str, Any]:
    """The annotation body for ``event`` (times in milliseconds, as Grafana wants)."""
    start_ms = int(event.timestamp * 1000)
    end = event.end_timestamp
    text = (
        f"{event.title} [{event.kind}, {event.country}, confidence {event.confidence}]\n"
        f"{event.summary}\nid: {event.id}; source: {event.sources[0]}"
    )
    return {
        "time": start_ms,
        "timeEnd": int(end * 1000) if end is not None else start_ms,
        "tags": [TAG, f"country:{event.country}", f"kind:{event.kind}", event_tag(event.id)],
        "text": text,
    }


Verb = Literal["create", "update", "unchanged"]


@dataclasses.dataclass(frozen=True, slots=True)
class Action:
    """What to do for one event: the verb, the body and the existing annotation id."""

    verb: Verb
    event_id: str
    body: Mapping[str, Any]
    annotation_id: int | None = None


def plan(event: ev.Event, existing: Sequence[Mapping[str, Any]]) -> Action:
    """Decide create / update / unchanged from the annotations already tagged with the event."""
    body = annotation(event)
    if not existing:
        return Action("create", event.id, body)
    current = existing[0]
    same = (
        int(current.get("time", -1)) == body["time"]
        and int(current.get("timeEnd", current.get("time", -1))) == body["timeEnd"]
        and current.get("text") == body["text"]
        and sorted(current.get("tags") or []) == sorted(body["tags"])
    )
    return Action("unchanged" if same else "update", event.id, body, int(current["id"]))


def request_for(action: Action, base_url: str) -> tuple[str, str, Mapping[str, Any]] | None:
    """(method, URL, JSON body) that carries out ``action``; None when nothing is to be done."""
    base = base_url.rstrip("/")
    if action.verb == "create":
        return "POST", f"{base}/api/annotations", action.body
    if action.verb == "update":
        return "PUT", f"{base}/api/annotations/{action.annotation_id}", action.body
    return None


async def push(
    events: Sequence[ev.Event], *, url: str, token: str = "", dry_run: bool = False
) -> collections.Counter[str]:
    """Write ``events`` as annotations at Grafana ``url``; return counts per verb.

    Raises GrafanaError on an HTTP error or an unreachable Grafana.
    """
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    counts: collections.Counter[str] = collections.Counter()
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)
    base = url.rstrip("/")
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            for event in events:
                params = {"tags": event_tag(event.id), "type": "annotation", "limit": "10"}
                async with session.get(f"{base}/api/annotations", params=params) as response:
                    existing = await _json(response, f"looking up {event.id}")
                if not isinstance(existing, list):
                    raise GrafanaError(f"looking up {event.id}: expected a JSON list")
                action = plan(event, existing)
                counts[action.verb] += 1
                request = request_for(action, base)
                if request is None or dry_run:
                    continue
                method, target, body = request
                async with session.request(method, target, json=body) as response:
                    await _json(response, f"writing {event.id}")
    except aiohttp.ClientError as exc:
        raise GrafanaError(f"cannot reach Grafana at {url}: {exc}") from None
    return counts


async def _json(response: aiohttp.ClientResponse, doing: str) -> Any:
    if response.status >= 400:
        text = (await response.text())[:200]
        raise GrafanaError(f"{doing}: Grafana answered HTTP {response.status}: {text}")
    try:
        return await response.json(content_type=None)
    except ValueError:
        raise GrafanaError(f"{doing}: Grafana answered non-JSON") from None
