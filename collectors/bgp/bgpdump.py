"""Reader ``bgpdump``: Debian's ``bgpdump`` in machine-readable mode, streamed from a subprocess.

``bgpdump -m`` decodes raw, gzip and bzip2 MRT: TABLE_DUMP (v1) and TABLE_DUMP_V2 RIBs, BGP4MP
(and legacy BGP) updates and state changes. It runs as its own process, so decoding overlaps with
the Python derivation on a second core. bgpdump exits 0 even on a truncated file; its ``-v``
diagnostics (``[error]`` / ``[warn]`` lines on stderr) are what mark a file partial.
"""

from __future__ import annotations

import bz2
import dataclasses
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import zlib
from collections.abc import Iterator
from typing import IO, Any, Literal

from collectors.bgp.elements import (
    Element,
    FileReport,
    ProgressCallback,
    collector_from_path,
    sha256_file,
)
from publiccore.errors import InputError

NAME = "bgpdump"
PROGRESS_EVERY = 20_000


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
        return _new(Element, ("R" if kind == "B" else "A", float(p[1]), collector, int(p[4]),
                              p[3], p[5], p[6], communities, p[8], 0))
    if kind == "W":
        return _new(Element, ("W", float(p[1]), collector, int(p[4]), p[3], p[5].rstrip(),
                              "", (), "", 0))
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


@dataclasses.dataclass(slots=True)
class _Feed:
    """What the decompressing feeder thread saw."""

    compressed_bytes: int = 0
    decompressed_bytes: int = 0
    problem: str = ""


def _feed(path: pathlib.Path, compression: str, sink: IO[bytes], feed: _Feed) -> None:
    """Decompress ``path`` into ``sink`` (bgpdump's stdin). Runs in a thread: zlib and bz2
    release the GIL, so this overlaps with bgpdump and with the Python derivation. Unlike
    ``bzip2 -dc`` it hands over every byte decoded before a truncation."""
    def new() -> Any:
        return zlib.decompressobj(wbits=47) if compression == "gzip" else bz2.BZ2Decompressor()

    decoder = new()
    try:
        with path.open("rb") as handle:
            while True:
                chunk = handle.read(1 << 18)
                if not chunk:
                    break
                feed.compressed_bytes += len(chunk)
                while chunk:
                    data = decoder.decompress(chunk)
                    feed.decompressed_bytes += len(data)
                    sink.write(data)
                    chunk = decoder.unused_data if decoder.eof else b""
                    if chunk:
                        decoder = new()  # another gzip member / bzip2 stream
        if not decoder.eof and feed.compressed_bytes:
            feed.problem = (f"{compression} stream ends early (truncated) after "
                            f"{feed.compressed_bytes:,} compressed / "
                            f"{feed.decompressed_bytes:,} decompressed bytes")
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        if not isinstance(exc, BrokenPipeError):
            feed.problem = (f"{compression} data corrupt after {feed.compressed_bytes:,} "
                            f"compressed / {feed.decompressed_bytes:,} decompressed bytes: "
                            f"{exc}")
    finally:
        try:
            sink.close()
        except OSError:
            pass


class BgpdumpRead:
    """Elements of one file read through ``bgpdump -m``; ``report`` is final once exhausted."""

    def __init__(self, path: str | os.PathLike[str], *, kind: Literal["rib", "updates"],
                 collector: str | None = None, progress: ProgressCallback | None = None,
                 binary: str = "bgpdump") -> None:
        self.path = pathlib.Path(path)
        self.kind: Literal["rib", "updates"] = kind
        self.collector = collector or collector_from_path(self.path)
        self.progress = progress
        self.binary = binary
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such MRT file")
        if not os.access(self.path, os.R_OK):
            raise InputError(f"{self.path}: not readable")
        if shutil.which(binary) is None:
            raise InputError("bgpdump not found: install Debian's bgpdump (apt install bgpdump)")
        self.sha256 = sha256_file(self.path)
        self._report: FileReport | None = None

    @property
    def report(self) -> FileReport:
        """The file's report; raises RuntimeError before the elements were read."""
        if self._report is None:
            raise RuntimeError("read the elements first")
        return self._report

    def __iter__(self) -> Iterator[Element]:
        collector = self.collector
        count = 0
        first: float | None = None
        last: float | None = None
        bad_lines = 0
        compression = compression_of(self.path)
        feed = _Feed()
        with tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as err, \
                tempfile.TemporaryFile(mode="w+", encoding="utf-8", errors="replace") as zerr:
            # gzip: a `gzip -dc` process (no GIL, writes every byte it can decode);
            # bzip2: a Python thread (libbz2 releases the GIL; `bzip2 -dc` would hold back
            # the last decoded bytes of a truncated file). Either overlaps with bgpdump.
            gunzip: subprocess.Popen[bytes] | None = None
            if compression == "gzip" and shutil.which("gzip"):
                gunzip = subprocess.Popen(["gzip", "-dc", str(self.path)],
                                          stdout=subprocess.PIPE, stderr=zerr,
                                          stdin=subprocess.DEVNULL)
            stdin: Any = subprocess.DEVNULL
            if gunzip is not None:
                stdin = gunzip.stdout
            elif compression is not None:
                stdin = subprocess.PIPE
            proc = subprocess.Popen(
                [self.binary, "-v", "-m", "-t", "dump", "-" if compression else str(self.path)],
                stdout=subprocess.PIPE, stderr=err, stdin=stdin,
                text=True, encoding="ascii", errors="replace", bufsize=1 << 20)
            if gunzip is not None and gunzip.stdout is not None:
                gunzip.stdout.close()  # bgpdump holds it now
            _grow_pipe(proc.stdout)
            feeder: threading.Thread | None = None
            if compression is not None and gunzip is None:
                assert proc.stdin is not None
                sink: IO[bytes] = proc.stdin.buffer  # type: ignore[attr-defined]
                feeder = threading.Thread(target=_feed, args=(self.path, compression, sink, feed),
                                          name=f"feed-{self.path.name}", daemon=True)
                feeder.start()
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
                    feeder.join(timeout=30)
                if gunzip is not None:
                    if gunzip.poll() is None:
                        gunzip.kill()
                    gunzip_code = gunzip.wait()
                    zerr.seek(0)
                    text = " ".join(zerr.read().split())
                    # -13: SIGPIPE, bgpdump stopped reading first (its own error says why);
                    # 2: a gzip warning such as trailing garbage, not a data loss
                    if gunzip_code not in (0, 2, -9, -13) or "unexpected end" in text:
                        what = ("stream ends early (truncated)" if "unexpected end" in text
                                else "data corrupt")
                        feed.problem = f"gzip {what}: {text or f'exit {gunzip_code}'}"
            err.seek(0)
            diagnostics = [ln.split("] ", 1)[-1].strip() for ln in err
                           if "[error]" in ln or "[warn]" in ln]
            if feed.problem:
                diagnostics.insert(0, feed.problem)
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
            if compression and feed.decompressed_bytes == 0 and not feed.problem \
                    and not problems:
                raise InputError(f"{self.path}: empty file (nothing after {compression} "
                                 "decompression), no MRT records")
            reason = "; ".join(problems[:3]) or "no BGP elements in it"
            raise InputError(f"{self.path}: not a readable MRT file ({reason})")
        self._report = FileReport(
            file=str(self.path), sha256=self.sha256, collector=collector, dump_time=first,
            elements=count, partial=bool(problems), problem="; ".join(problems[:5]),
            last_time=last, reader=NAME, kind=self.kind)


class BgpdumpReader:
    """The ``bgpdump`` reader (see module doc)."""

    name = NAME

    def __init__(self, binary: str = "bgpdump") -> None:
        self.binary = binary

    def read(self, path: str | os.PathLike[str], *, kind: Literal["rib", "updates"],
             collector: str | None = None,
             progress: ProgressCallback | None = None) -> BgpdumpRead:
        """Open ``path`` for reading; raise InputError when it cannot be read at all."""
        return BgpdumpRead(path, kind=kind, collector=collector, progress=progress,
                           binary=self.binary)
