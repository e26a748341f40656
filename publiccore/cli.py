"""The ``publiccore`` command line.

Each stage registers its own sub-commands (``register(subparsers)`` in its ``commands`` module);
this module only wires them together, so it is the one place that imports every stage, lazily.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from publiccore import __version__
from publiccore import config as cfg
from publiccore.errors import PubliccoreError

# Stage modules that contribute sub-commands, in help order.
COMMAND_MODULES: tuple[str, ...] = (
    "publiccore.services",
    "probes.commands",
    "probes.agent_commands",
    "collectors.commands",
    "collectors.bgp.commands",
    "collectors.paths_commands",
    "exporters.commands",
)


def _config_show(args: argparse.Namespace) -> int:
    sys.stdout.write(cfg.to_toml(cfg.load(args.config)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the full argument parser with every stage's sub-commands."""
    parser = argparse.ArgumentParser(
        prog="publiccore",
        description="Measure the Internet's public core: DNS root, routing, cross-border paths.")
    parser.add_argument("--version", action="version", version=f"publiccore {__version__}")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    config = sub.add_parser("config", help="show the effective configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    show = config_sub.add_parser("show", help="print the effective configuration as TOML")
    show.set_defaults(func=_config_show)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue  # a stage not built yet
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
