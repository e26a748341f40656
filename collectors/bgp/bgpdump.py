"""Reader ``bgpdump``: Debian's ``bgpdump`` in machine-readable mode, streamed from a subprocess.

``bgpdump -m`` decodes raw, gzip and bzip2 MRT: TABLE_DUMP (v1) and TABLE_DUMP_V2 RIBs, BGP4MP
(and legacy BGP) updates and state changes. It runs as its own process, so decoding overlaps with
the Python derivation on a second core. bgpdump exits 0 even on a truncated file; its ``-v``
diagnostics (``[error]`` / ``[warn]`` lines on stderr) are what mark a file partial, and tell a
truncated file (``truncated: …``: it ends inside a plausible record) from a corrupt one
(``corrupt MRT data: …``: a bad marker, an impossible length or AFI inside the data).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Generator, Iterator
from typing import IO, TYPE_CHECKING, Literal

from publiccore.collectors.bgp.elements import (
    Element,
    FileRead,
    FileReport,
    ProgressCallback,
)

from publiccore.errors import InputError

if TYPE_CHECKING:
    from publiccore.collectors.bgp.rib import Rib

NAME = "bgpdump"
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


# glibc returns freed memory to the kernel on every free by default, which on a full-table RIB
# was half of bgpdump's CPU time (system time) in the measurements of issue 11; a 4 MiB top pad
# keeps it. benchmarks/bgp_follow.py measures bgpdump with and without it.
MALLOC_TUNABLE = "glibc.malloc.top_pad=4194304"
TUNABLE_OVERRIDE = "PUBLICCORE_BGPDUMP_TUNABLE"  # another value for bgpdump only ("": none)


def bgpdump_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment bgpdump runs in: ours plus ``MALLOC_TUNABLE`` in ``GLIBC_TUNABLES``
    (or ``$PUBLICCORE_BGPDUMP_TUNABLE``, for measurements; a pad already chosen is kept)."""
    env = dict(os.environ if base is None else base)
    tunable = env.pop(TUNABLE_OVERRIDE, MALLOC_TUNABLE)
    current = env.get("GLIBC_TUNABLES", "")
    if tunable and "glibc.malloc.top_pad" not in current:
        env["GLIBC_TUNABLES"] = f"{current}:{tunable}" if current else tunable
    return env


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


def _grow_pipe(stream: IO[bytes] | None) -> None:
    """Ask Linux for a 1 MiB pipe buffer (fewer context switches); ignore if refused."""
    if stream is None:
        return
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ
    except (ImportError, OSError):
        pass


# bgpdump writes its lines through stdio, which on a pipe flushes every 4 KiB: one write system
# call per 4 KiB, a tenth of its time on a full table (issue 11). coreutils' stdbuf gives it a
# 1 MiB buffer instead; without stdbuf bgpdump runs as it is.
STDOUT_BUFFER = "1M"
READ_BLOCK = 1 << 20  # bytes of bgpdump output read (and split into lines) at a time


def bgpdump_command(binary: str, source: str) -> list[str]:
    """The command line that runs bgpdump on ``source`` (a path, or ``-`` for stdin)."""
    command = [binary, "-v", "-m", "-t", "dump", source]
    stdbuf = shutil.which("stdbuf")
    return [stdbuf, "-o", STDOUT_BUFFER, *command] if stdbuf else command


def line_blocks(stream: IO[bytes]) -> Iterator[list[str]]:
    """The lines of a byte stream, without their newlines, a block (up to 1 MiB) at a time.

    One decode and one split per block instead of per-line reads: the Python side must keep up
    with bgpdump. Bytes outside ASCII become U+FFFD, as in bgpdump's text mode before.
    """
    rest = ""
    read = stream.read
    while True:
        data = read(READ_BLOCK)
        if not data:
            break
        lines = (rest + data.decode("ascii", "replace")).split("\n")
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        yield [rest]


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
    """Elements of one file read through ``bgpdump -m``; ``report`` is final once exhausted.

    Iterate it for ``Element`` values, or let a ``Rib`` take it whole (``fold_into``: the RIB
    entries go into the table without an Element each, the hot path of a RIB load).
    """

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
        self._diagnostics: list[str] = []
        self._returncode = 0
        self._compression: str | None = None

    def __iter__(self) -> Iterator[Element]:
        collector = self.collector
        count = bad_lines = 0
        first: float | None = None
        last: float | None = None
        progress = self.progress
        with contextlib.closing(self._blocks()) as blocks:
            for lines in blocks:
                for line in lines:
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
                    yield element
                if progress is not None:
                    progress(self.path.name, count)
        self._finish(count=count, first=first, last=last, bad_lines=bad_lines)

    def fold_into(self, rib: Rib, on_new_prefix: Callable[[str], object] | None = None) -> int:
        """Apply the file's elements to ``rib`` exactly as ``Rib.apply`` would; return how many.

        RIB entry lines (``B``) set their route straight from the line's fields (time checked,
        peer session looked up once per distinct peer text, one string object per distinct AS
        path); any other line goes through
        ``parse_line`` and ``Rib.apply``. Lines ``parse_line`` would refuse are counted as
        unparsable here too, so the table and the report are the same either way.
        """
        collector = self.collector
        routes = rib.routes
        sessions: dict[tuple[str, str], int] = {}
        # one string per distinct AS path: peers and prefixes share paths (a third to a sixth
        # of a RIB's entries are distinct), and the table holds its paths while it lives
        interned: dict[str, str] = {}
        intern = interned.setdefault
        count = bad_lines = generic = 0
        first: str | float | None = None
        last: str | float | None = None
        checked = ""  # the last time text known to parse (RIB entries share a few times)
        progress = self.progress
        with contextlib.closing(self._blocks()) as blocks:
            for lines in blocks:
                for line in lines:
                    p = line.split("|", 7)
                    # a B line as parse_line reads it: at least 12 fields
                    if len(p) == 8 and p[2] == "B" and p[7].count("|") >= 4:
                        moment = p[1]
                        try:
                            if moment != checked:
                                float(moment)
                                checked = moment
                            session = sessions.get((p[3], p[4]))
                            if session is None:
                                session = rib.peer_index(collector, int(p[4]), p[3])
                                sessions[(p[3], p[4])] = session
                        except ValueError:
                            bad_lines += 1
                            continue
                        prefix = p[5]
                        path = intern(p[6], p[6])
                        per_peer = routes.get(prefix)
                        if per_peer is None:
                            routes[prefix] = {session: path}
                            if on_new_prefix is not None:
                                on_new_prefix(prefix)
                        else:
                            per_peer[session] = path
                        count += 1
                        if first is None:
                            first = moment
                        last = moment
                        continue
                    try:
                        element = parse_line(line, collector)
                    except (ValueError, IndexError):
                        bad_lines += 1
                        continue
                    if element is None:
                        continue
                    count += 1
                    generic += 1
                    if first is None:
                        first = element.time
                    last = element.time
                    rib.apply((element,), on_new_prefix)  # counts itself in rib.elements
                if progress is not None:
                    progress(self.path.name, count)
        rib.elements += count - generic
        self._finish(
            count=count,
            first=None if first is None else float(first),
            last=None if last is None else float(last),
            bad_lines=bad_lines,
        )
        return count

    def _blocks(self) -> Generator[list[str], None, None]:
        """bgpdump's output lines, a block at a time; the processes are ended when it ends.

        Once exhausted, ``_diagnostics`` and ``_returncode`` hold what bgpdump (and the
        decompressor) said.
        """
        compression = compression_of(self.path)
        self._compression = compression
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
                bgpdump_command(self.binary, "-" if compression else str(self.path)),
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=feeder.stdout if feeder is not None else subprocess.DEVNULL,
                env=bgpdump_environment(),
                bufsize=0,
            )
            if feeder is not None and feeder.stdout is not None:
                _grow_pipe(feeder.stdout)  # the decompressor runs ahead of bgpdump
                feeder.stdout.close()  # bgpdump holds it now
            _grow_pipe(proc.stdout)
            assert proc.stdout is not None
            try:
                yield from line_blocks(proc.stdout)
            finally:
                proc.stdout.close()
                if proc.poll() is None:
                    proc.kill()
                self._returncode = proc.wait()
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
        self._diagnostics = diagnostics

    def _finish(
        self, *, count: int, first: float | None, last: float | None, bad_lines: int
    ) -> None:
        """Set the report once the lines are read; raise InputError when they gave nothing."""
        if self.progress is not None:
            self.progress(self.path.name, count)
        returncode = self._returncode
        compression = self._compression
        problems = list(dict.fromkeys(self._diagnostics))
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
            collector=self.collector,
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
