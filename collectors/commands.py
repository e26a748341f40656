"""``publiccore probes add | list | revoke``: the collector's probe registry.

``publiccore serve`` (ingest + exporter) is wired in ``publiccore.app.services``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import TYPE_CHECKING

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from publiccore.store import Store

_COUNTRY = re.compile(r"^[A-Z]{2}$")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    probes = sub.add_parser("probes", help="register, list and revoke probes (collector admin)")
    actions = probes.add_subparsers(dest="probes_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="register a probe; prints its id and token once")
    cliargs.add_config_and_store(add)
    add.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. NL")
    add.add_argument("--asn", required=True, type=_asn, help="the probe's network's AS number")
    add.add_argument("--name", default="", help="a note for operators (not published)")
    add.add_argument("--json", action="store_true", help='print {"id", "token"} as JSON')
    add.set_defaults(func=_probes_add)
    listing = actions.add_parser("list", help="list registered probes (never their tokens)")
    cliargs.add_config_and_store(listing)
    listing.add_argument("--json", action="store_true", help="print JSON Lines")
    listing.set_defaults(func=_probes_list)
    revoke = actions.add_parser("revoke", help="refuse a probe's token from now on")
    cliargs.add_config_and_store(revoke)
    revoke.add_argument("probe_id", metavar="ID")
    revoke.set_defaults(func=_probes_revoke)


def _asn(text: str) -> int:
    try:
        value = int(text.upper().removeprefix("AS"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an AS number: {text!r}") from None
    if not 0 < value < 2**32:
        raise argparse.ArgumentTypeError("AS number out of range")
    return value


def _open_store(args: argparse.Namespace, settings: cfg.Settings) -> Store:
    from publiccore.store import open_configured

    return open_configured(settings, args.store)


def _probes_add(args: argparse.Namespace) -> int:
    from publiccore.store import ProbeRegistration
    from publiccore.store.registry import new_probe_id, new_token, token_hash

    settings = cfg.load(args.config)
    country = args.country.upper()
    from publiccore.domains import is_country

    if not _COUNTRY.match(country) or not is_country(country):
        raise ConfigError(f"--country must be an ISO 3166-1 alpha-2 code, got {args.country!r}")
    token = new_token()
    probe = ProbeRegistration(
        id=new_probe_id(),
        country=country,
        asn=args.asn,
        token_hash=token_hash(token),
        name=args.name,
    )
    with _open_store(args, settings) as store:
        store.add_probe(probe)
    if args.json:
        sys.stdout.write(json.dumps({"id": probe.id, "token": token}) + "\n")
        return 0
    sys.stdout.write(
        f"probe {probe.id} registered ({country}, AS{args.asn})\n"
        f"token {token}\n"
        "The token is shown only this once. Put both in the probe's configuration:\n\n"
        f'[probe]\nid = "{probe.id}"\ncountry = "{country}"\nasn = {args.asn}\n'
        f'token = "{token}"\ncollector_url = "https://collector.example"\n'
    )
    return 0


def _probes_list(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    with _open_store(args, settings) as store:
        probes = store.list_probes()
    if args.json:
        for p in probes:
            sys.stdout.write(
                json.dumps(
                    {
                        "id": p.id,
                        "name": p.name,
                        "country": p.country,
                        "asn": p.asn,
                        "created": p.created.isoformat() if p.created else None,
                        "revoked": p.revoked.isoformat() if p.revoked else None,
                    }
                )
                + "\n"
            )
        return 0
    if not probes:
        sys.stdout.write("no probes registered\n")
        return 0
    sys.stdout.write(f"{'id':<14} {'country':<7} {'asn':>10}  {'created':<20} {'state':<8} name\n")
    for p in probes:
        created = p.created.strftime("%Y-%m-%d %H:%M:%S") if p.created else "-"
        state = "revoked" if p.revoked else "active"
        sys.stdout.write(
            f"{p.id:<14} {p.country:<7} {p.asn:>10}  {created:<20} {state:<8} {p.name}\n"
        )
    return 0


def _probes_revoke(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    with _open_store(args, settings) as store:
        revoked = store.revoke_probe(args.probe_id)
    if not revoked:
        raise StoreError(f"no active probe {args.probe_id!r}")
    sys.stdout.write(f"probe {args.probe_id} revoked\n")
    return 0
