"""``publiccore store rederive``: rebuild the typed facts and buckets from the raw records."""

from __future__ import annotations

import argparse
import sys
import time

from publiccore import cliargs
from publiccore import config as cfg
from publiccore.store import open_configured


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    store = sub.add_parser("store", help="maintain the store (rebuild derived facts)")
    actions = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    rederive = actions.add_parser(
        "rederive",
        help="rebuild every typed row and bucket from the stored raw records "
        "(after a definition change or a new site table)",
    )
    cliargs.add_config_and_store(rederive)
    rederive.set_defaults(func=_rederive)


def _rederive(args: argparse.Namespace) -> int:
    settings = cfg.load(args.config)
    started = time.monotonic()
    with open_configured(settings, args.store) as store:
        count = store.rederive()
    elapsed = time.monotonic() - started
    sys.stdout.write(f"rederived the facts of {count} root-dns records in {elapsed:.1f} s\n")
    return 0
