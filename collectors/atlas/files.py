"""Reading RIPE Atlas result files as people have them.

Accepted: a JSON array of results, JSON Lines (the Atlas daily dumps, one result a line), a
``{"results": [...]}`` wrapper (with any other keys, as ripe-atlas-monitor writes it), each plain,
gzip or bzip2 (told by the first bytes, not the name). Every result comes with its position
(``line N`` or ``item N``); what cannot be read becomes a ``Malformed`` item at that position, so
the results before it are still imported and nothing after a bad line is lost.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import hashlib
import json
import os
import pathlib
import zlib
from collections.abc import Iterator
from typing import IO, Any

from publiccore.errors import InputError

_GZIP = b"\x1f\x8b"
_BZIP2 = b"BZh"


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    """One decoded result and where it was."""

    position: str
    value: Any


@dataclasses.dataclass(frozen=True, slots=True)
class Malformed:
    """Something at ``position`` that is not a readable result, and why."""

    position: str
    reason: str


def sha256_of(path: str | os.PathLike[str]) -> str:
    """The SHA-256 of the file as given (compressed bytes); raise InputError."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    return digest.hexdigest()


def open_input(path: pathlib.Path) -> IO[bytes]:
    """Open a plain, gzip or bzip2 file for reading its decompressed bytes; raise InputError."""
    try:
        raw = path.open("rb")
        magic = raw.read(3)
        raw.seek(0)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if magic.startswith(_GZIP):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if magic.startswith(_BZIP2):
        return bz2.BZ2File(raw)
    return raw


_READ_ERRORS = (OSError, EOFError, zlib.error, ValueError)


def _first_char(stream: IO[bytes]) -> tuple[bytes, bytes]:
    """Skip leading whitespace; return (first non-blank byte, bytes read so far)."""
    seen = b""
    while True:
        chunk = stream.read(1)
        if not chunk:
            return b"", seen
        seen += chunk
        if not chunk.isspace():
            return chunk, seen


def read_results(path: str | os.PathLike[str]) -> Iterator[Item | Malformed]:
    """Yield every result of one file in order, or a Malformed where reading failed.

    Raises InputError only when the file cannot be opened at all.
    """
    file = pathlib.Path(path)
    stream = open_input(file)
    try:
        try:
            first, head = _first_char(stream)
        except _READ_ERRORS as exc:
            yield Malformed("byte 0", f"cannot decompress: {exc}")
            return
        if first == b"{":
            # JSON Lines, or a single wrapper object: try the first line as a whole result.
            line = head + stream.readline()
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            if isinstance(obj, dict) and "results" not in obj:
                yield from _lines(stream, first_line=line)
                return
            yield from _document(line + stream.read())
            return
        if first == b"[":
            try:
                data = head + stream.read()
            except _READ_ERRORS as exc:
                yield Malformed("item 1", f"truncated or corrupt input: {exc}")
                return
            yield from _document(data)
            return
        if first == b"":
            return
        yield Malformed("byte 0", "not JSON: expected an array, an object or JSON Lines")
    except _READ_ERRORS as exc:
        yield Malformed("item 1", f"truncated or corrupt input: {exc}")
    finally:
        stream.close()


def _lines(stream: IO[bytes], *, first_line: bytes) -> Iterator[Item | Malformed]:
    number = 1
    line = first_line
    while True:
        if line.strip():
            try:
                yield Item(f"line {number}", json.loads(line))
            except ValueError as exc:
                yield Malformed(f"line {number}", f"bad JSON: {exc}")
        try:
            line = stream.readline()
        except _READ_ERRORS as exc:
            yield Malformed(f"line {number + 1}", f"truncated or corrupt input: {exc}")
            return
        if not line:
            return
        number += 1


def _document(data: bytes) -> Iterator[Item | Malformed]:
    try:
        obj = json.loads(data)
    except ValueError as exc:
        yield Malformed("item 1", f"bad JSON: {exc}")
        return
    if isinstance(obj, dict):
        obj = obj.get("results")
        if not isinstance(obj, list):
            yield Malformed("item 1", 'expected a "results" array in the object')
            return
    if not isinstance(obj, list):
        yield Malformed("item 1", "expected a JSON array of results")
        return
    for index, value in enumerate(obj, 1):
        yield Item(f"item {index}", value)
