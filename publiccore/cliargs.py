"""Argument helpers every stage's ``commands`` module shares (argparse types and options)."""

from __future__ import annotations

import argparse


def add_config(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` on a sub-command, also accepted before it (``publiccore --config F …``).

    default=SUPPRESS keeps the global option's value from being overwritten by the sub-command's.
    """
    parser.add_argument(
        "--config", metavar="FILE", default=argparse.SUPPRESS, help="TOML configuration file"
    )


def add_config_and_store(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` and ``--store PATH`` (a SQLite store instead of the configured one)."""
    add_config(parser)
    parser.add_argument("--store", metavar="PATH", help="SQLite store (default: store.path)")


def add_hints_and_anchors(parser: argparse.ArgumentParser) -> None:
    """``--hints FILE`` and ``--anchors FILE`` for the root measurer (defaults: [root], bundled)."""
    parser.add_argument(
        "--hints",
        metavar="FILE",
        help="root hints file (default: [root] hints, else the bundled IANA file)",
    )
    parser.add_argument(
        "--anchors",
        metavar="FILE",
        help="trust anchors, IANA XML or DS lines (default: [root] anchors, else "
        "the bundled IANA file)",
    )


def positive_int(text: str) -> int:
    """An argparse type: a whole number ≥ 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value
