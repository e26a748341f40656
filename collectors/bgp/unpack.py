"""Decompress a gzip or bzip2 MRT file to stdout, every decodable byte, in its own process.

``python -m collectors.bgp.unpack gzip|bzip2 FILE``. The bgpdump reader feeds bgpdump's stdin
from it so decompression runs on another core. Unlike ``bzip2 -dc`` it writes out every byte
decoded before a truncation (``bzip2 -dc`` keeps back its last buffer). Exit status 0 when the
stream ended properly; 3 with one line on stderr saying how far it got when the stream is
truncated or corrupt. Standard library only, so it starts fast.
"""

from __future__ import annotations

import bz2
import sys
import zlib
from collections.abc import Iterator
from typing import IO, Any

PIECE = 1 << 16  # bytes of output decoded and written at a time


def _pieces(decoder: Any, chunk: bytes) -> Iterator[bytes]:
    """What ``chunk`` decodes to, at most ``PIECE`` bytes at a time.

    Small pieces keep the reader fed: one compressed chunk can decode to megabytes, and a
    write that large blocks until the reader has taken nearly all of it, after which the
    reader waits while the next chunk is decoded (a bzip2 RIB took ~0.3 s longer that way).
    """
    yield decoder.decompress(chunk, PIECE)
    if isinstance(decoder, bz2.BZ2Decompressor):
        while not decoder.eof and not decoder.needs_input:
            yield decoder.decompress(b"", PIECE)
    else:
        while decoder.unconsumed_tail:
            yield decoder.decompress(decoder.unconsumed_tail, PIECE)


def unpack(path: str, compression: str, sink: IO[bytes]) -> str:
    """Decompress ``path`` into ``sink``; return "" or what went wrong and how far it got."""

    def new() -> Any:
        return zlib.decompressobj(wbits=47) if compression == "gzip" else bz2.BZ2Decompressor()

    compressed = decompressed = 0
    decoder = new()
    try:
        with open(path, "rb") as handle:
            while True:
                chunk = handle.read(1 << 18)
                if not chunk:
                    break
                compressed += len(chunk)
                while chunk:
                    for data in _pieces(decoder, chunk):
                        decompressed += len(data)
                        sink.write(data)
                    chunk = decoder.unused_data if decoder.eof else b""
                    if chunk:
                        decoder = new()  # another gzip member / bzip2 stream
        sink.flush()
    except BrokenPipeError:
        return ""  # the reader stopped first; its own error says why
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        return (
            f"{compression} data corrupt after {compressed:,} compressed / "
            f"{decompressed:,} decompressed bytes: {exc}"
        )
    if compressed and not decoder.eof:
        return (
            f"{compression} stream ends early (truncated) after {compressed:,} "
            f"compressed / {decompressed:,} decompressed bytes"
        )
    return ""


def main(argv: list[str]) -> int:
    """Command-line entry; see module doc."""
    if len(argv) != 2 or argv[0] not in ("gzip", "bzip2"):
        print("usage: python -m collectors.bgp.unpack gzip|bzip2 FILE", file=sys.stderr)
        return 2
    problem = unpack(argv[1], argv[0], sys.stdout.buffer)
    if problem:
        print(problem, file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main(sys.argv[1:]))
    except BrokenPipeError:
        raise SystemExit(0) from None
