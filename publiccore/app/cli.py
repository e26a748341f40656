"""The ``publiccore`` command line.

Each stage registers its own sub-commands (``register(subparsers)`` in its ``commands`` module);
this module, in the composition root, only wires them together. The command modules import their
heavy dependencies inside the functions they run, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from publiccore import __version__
from publiccore import config as cfg
from publiccore.app import services, store_commands
from publiccore.collectors import commands as collector_commands
from publiccore.collectors import impact_commands, paths_commands, rootzone_commands
from publiccore.collectors.atlas import commands as atlas_commands
from publiccore.collectors.bgp import commands as bgp_commands
from publiccore.errors import PubliccoreError
from publiccore.exporters import commands as exporter_commands
from publiccore.probes import agent_commands
from publiccore.probes import commands as probe_commands

# Modules that contribute sub-commands, in help order.
COMMAND_MODULES = (
    services,
    probe_commands,
    agent_commands,
    collector_commands,
    bgp_commands,
    paths_commands,
    rootzone_commands,
    atlas_commands,
    impact_commands,
    exporter_commands,
    store_commands,
)


def _config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(cfg.to_toml(cfg.load(args.config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the full argument parser with every stage's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="publiccore",
        description="Measure the Internet's public core: DNS root, routing, cross-border paths.",
    )
    parser.add_argument("--version", action="version", version=f"publiccore {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = sub.add_parser("config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the effective configuration as TOML")
    show.set_defaults(func=_config_show)
    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PubliccoreError as exc:
        print(f"publiccore: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``publiccore … --json | head``): not an error of ours. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
