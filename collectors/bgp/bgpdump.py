"""Reader ``bgpdump``: Debian's ``bgpdump`` in machine-readable mode, streamed from a subprocess.

``bgpdump -m`` decodes raw, gzip and bzip2 MRT: TABLE_DUMP (v1) and TABLE_DUMP_V2 RIBs, BGP4MP
(and legacy BGP) updates and state changes. It runs as its own process, so decoding overlaps with
the Python derivation on a second core. bgpdump exits 0 even on a truncated file; its ``-v``
diagnostics (``[error]`` / ``[warn]`` lines on stderr) are what mark a file partial, and tell a
truncated file (``truncated: …``: it ends inside a plausible record) from a corrupt one
(``corrupt MRT data: …``: a bad marker, an impossible length or AFI inside the data).
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Literal

from publiccore.collectors.bgp.elements import (
    Element,
    FileRead,
    FileReport,
    ProgressCallback,
)

from publiccore.errors import InputError

NAME = "bgpdump"
PROGRESS_EVERY = 20_000
CORRUPT_PREFIX = "corrupt MRT data: "  # FileReport.problem of a damaged (not truncated) file
# A longer "expected" record length is a corrupt header: BGP4MP carries one BGP message (at most
# 65,535 bytes with RFC 8654 extended messages) plus its header; a RIB entry may list many peers.
MAX_RECORD_BYTES = {"updates": 65_535 + 1024, "rib": 16 * 1024 * 1024}
_INCOMPLETE = re.compile(r"incomplete dump record \((\d+) bytes read, expecting (-?\d+)\)")


def is_truncation(diagnostic: str, *, kind: Literal["rib", "updates"] = "updates") -> bool:
    """Whether a bgpdump diagnostic says only that the file ends inside a plausible record.

    bgpdump reports a file cut short as ``incomplete dump record (R bytes read, expecting E)``
    for its last record; a corrupt header gives the same line with an absurd E (negative or
    huge), and damage inside records gives other lines (``bad marker``, ``unsupported AFI``,
    ``attribute is truncated``).
    """
    match = _INCOMPLETE.search(diagnostic)
    if match is None:
        return "stream ends early (truncated)" in diagnostic
    read, expected = int(match.group(1)), int(match.group(2))
    return 0 <= read < expected <= MAX_RECORD_BYTES[kind]


def classify(
    problems: list[str], *, returncode: int, kind: Literal["rib", "updates"] = "updates"
) -> str:
    """The ``problem`` text of a file report: ``truncated: …`` or ``corrupt MRT data: …``.

    A file is truncated when every diagnostic is a truncation (and bgpdump exited normally);
    anything else is damage the decoder saw inside the data. "" when there is no problem.
    """
    if not problems:
        return ""
    text = "; ".join(problems[:5])
    if returncode in (0, -9) and all(is_truncation(p, kind=kind) for p in problems):
        return f"truncated: {text}"
    return CORRUPT_PREFIX + text


def available() -> bool:
    """True when the ``bgpdump`` binary is on PATH."""
    return shutil.which("bgpdump") is not None


def _states(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        return 0


def parse_line(line: str, collector: str) -> Element | None:
    """One ``bgpdump -m`` line → an element, or None for lines that carry none.

    Raises ValueError on a line that does not have the ``-m`` shape.
    """
    p = line.split("|")
    kind = p[2]
    if kind == "B" or kind == "A":
        communities = () if p[0] == "BGP" or not p[11] else tuple(p[11].split())
        return _new(
            Element,
            (
                "R" if kind == "B" else "A",
                float(p[1]),
                collector,
                int(p[4]),
                p[3],
                p[5],
                p[6],
                communities,
                p[8],
                0,
            ),
        )
    if kind == "W":
        return _new(
            Element, ("W", float(p[1]), collector, int(p[4]), p[3], p[5].rstrip(), "", (), "", 0)
        )
    if kind == "STATE":
        return Element("S", float(p[1]), collector, int(p[4]), p[3], "", new_state=_states(p[6]))
    return None


_new = tuple.__new__  # builds an Element without the NamedTuple constructor's overhead


def _grow_pipe(stream: IO[str] | None) -> None:
    """Ask Linux for a 1 MiB pipe buffer (fewer context switches); ignore if refused."""
    if stream is None:
        return
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError):
        pass


def compression_of(path: pathlib.Path) -> str | None:
    """``gzip`` or ``bzip2`` from the file's magic bytes, else None (raw MRT)."""
    with path.open("rb") as handle:
        magic = handle.read(3)
    if magic[:2] == b"\x1f\x8b":
        return "gzip"
    if magic == b"BZh":
        return "bzip2"
    return None


def unpacker(path: pathlib.Path, compression: str) -> list[str]:
    """The decompressor process for a file: ``gzip -dc`` when present, else our own."""
    if compression == "gzip" and shutil.which("gzip"):
        return ["gzip", "-dc", str(path)]
    return [sys.executable, "-m", "publiccore.collectors.bgp.unpack", compression, str(path)]


def unpacker_problem(compression: str, code: int, text: str) -> str:
    """What a decompressor's exit status and stderr say about the stream ("" = fine)."""
    text = " ".join(text.split())
    if code in (0, -9, -13):  # -13: SIGPIPE, bgpdump stopped first (its own error says why)
        return ""
    if code == 3:  # collectors.bgp.unpack: truncated or corrupt, how far it got
        return text
    if code == 2 and compression == "gzip" and "unexpected end" not in text:
        return ""  # a gzip warning such as trailing garbage, no data lost
    what = "stream ends early (truncated)" if "unexpected end" in text else "data corrupt"
    return f"{compression} {what}: {text or f'exit status {code}'}"


class BgpdumpRead(FileRead):
    """Elements of one file read through ``bgpdump -m``; ``report`` is final once exhausted."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
        binary: str = "bgpdump",
    ) -> None:
        super().__init__(path, kind=kind, collector=collector, progress=progress)
        self.binary = binary
        if shutil.which(binary) is None:
            raise InputError("bgpdump not found: install Debian's bgpdump (apt install bgpdump)")

    def __iter__(self) -> Iterator[Element]:
        collector = self.collector
        count = 0
        first: float | None = None
        last: float | None = None
        bad_lines = 0
        compression = compression_of(self.path)
        unpack_problem = ""
        with (
            tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err,
            tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as zerr,
        ):
            # compressed files: a decompressor process feeds bgpdump's stdin, so decompression,
            # decoding and the Python derivation run side by side
            feeder: subprocess.Popen[bytes] | None = None
            if compression is not None:
                feeder = subprocess.Popen(
                    unpacker(self.path, compression),
                    stdout=subprocess.PIPE,
                    stderr=zerr,
                    stdin=subprocess.DEVNULL,
                )
            proc = subprocess.Popen(
                [self.binary, "-v", "-m", "-t", "dump", "-" if compression else str(self.path)],
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=feeder.stdout if feeder is not None else subprocess.DEVNULL,
                text=True,
                encoding="ascii",
                errors="replace",
                bufsize=1 << 20,
            )
            if feeder is not None and feeder.stdout is not None:
                feeder.stdout.close()  # bgpdump holds it now
            _grow_pipe(proc.stdout)
            assert proc.stdout is not None
            progress = self.progress
            name = self.path.name
            try:
                for line in proc.stdout:
                    try:
                        element = parse_line(line, collector)
                    except (ValueError, IndexError):
                        bad_lines += 1
                        continue
                    if element is None:
                        continue
                    count += 1
                    if first is None:
                        first = element.time
                    last = element.time
                    if progress is not None and count % PROGRESS_EVERY == 0:
                        progress(name, count)
                    yield element
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                returncode = proc.wait()
                if feeder is not None:
                    if feeder.poll() is None:
                        feeder.kill()
                    code = feeder.wait()
                    zerr.seek(0)
                    unpack_problem = unpacker_problem(compression or "", code, zerr.read())
            err.seek(0)
            diagnostics = [
                ln.split("] ", 1)[-1].strip() for ln in err if "[error]" in ln or "[warn]" in ln
            ]
            if unpack_problem:
                diagnostics.insert(0, unpack_problem)
        if progress is not None:
            progress(name, count)
        problems = list(dict.fromkeys(diagnostics))
        if bad_lines:
            problems.append(f"{bad_lines} unparsable bgpdump lines")
        if returncode not in (0, -9):
            problems.append(f"bgpdump exited with status {returncode}")
        if count == 0:
            if self.path.stat().st_size == 0:
                raise InputError(f"{self.path}: empty file, no MRT records")
            if compression and not problems:
                raise InputError(
                    f"{self.path}: empty file (nothing after {compression} "
                    "decompression), no MRT records"
                )
            reason = "; ".join(problems[:3]) or "no BGP elements in it"
            raise InputError(f"{self.path}: not a readable MRT file ({reason})")
        self._report = FileReport(
            file=str(self.path),
            sha256=self.sha256,
            collector=collector,
            dump_time=first,
            elements=count,
            partial=bool(problems),
            problem=classify(problems, returncode=returncode, kind=self.kind),
            last_time=last,
            reader=NAME,
            kind=self.kind,
        )


class BgpdumpReader:
    """The ``bgpdump`` reader (see module doc)."""

    name = NAME

    def __init__(self, binary: str = "bgpdump") -> None:
        self.binary = binary

    def read(
        self,
        path: str | os.PathLike[str],
        *,
        kind: Literal["rib", "updates"],
        collector: str | None = None,
        progress: ProgressCallback | None = None,
    ) -> BgpdumpRead:
        """Open ``path`` for reading; raise InputError when it cannot be read at all."""
        return BgpdumpRead(
            path, kind=kind, collector=collector, progress=progress, binary=self.binary
        )
