"""Raw-record compaction: each distinct DNS wire answer stored once, the rest compressed.

A ``root-dns`` record is mostly its base64 wire answers, and most of them repeat: the SOA and
DNSKEY answer of one server site (same records, same signatures) for the life of a serial, in
every probe's record. ``pack`` cuts each answer out of the record's canonical JSON, keys it by
the SHA-256 of its bytes and compresses what stays (zstandard). ``unpack`` puts the answers back
and returns the body byte for byte.

Only the DNS message ID (the first two bytes) differs between two answers of one site: the
answer is stored with ID 0 (still a valid DNS message, hashed in that form) and the record's blob
keeps the ID. Only canonical base64 (``base64.b64encode``'s output) of at least a DNS header's
length is cut out; anything else stays in the text as it is, so any text round-trips.

Blob layout (version byte first)::

    0x00  zstd(body)                                  traceroute and unknown kinds
    0x01  zstd(refs ‖ template)   with the root-dns dictionary below
          refs: varint n, then n × (32-byte SHA-256, 2-byte DNS ID, varint gap)
          template: the body without the cut base64 texts (UTF-8); the gap of a ref is the number
          of template characters between the previous cut (or the start) and this one.

An answer blob is ``zstd(wire with ID 0)``. The layout and ``_ROOT_DICTIONARY`` never change for
a version byte: a new layout or dictionary takes a new version byte, and old blobs keep reading.
"""

from __future__ import annotations

import binascii
import dataclasses
import hashlib
import threading
from collections.abc import Callable, Mapping

import zstandard

from publiccore.errors import StoreError

LEVEL = 3  # zstd level: higher levels shrink a 2 KB template by < 3 % here, at twice the time
MIN_ANSWER_BYTES = 12  # a DNS header; shorter base64 text is not a DNS answer and stays inline
_MIN_ANSWER_TEXT = 4 * -(-MIN_ANSWER_BYTES // 3)  # its base64 length
_PLAIN = 0x00
_ROOT_V1 = 0x01
_KEY = '"wire_b64":"'  # what precedes each answer's base64 text in a root-dns body
_DIGEST_BYTES = 32

# What every root-dns body repeats: the field names and the usual values, in canonical order. A
# raw-content zstd dictionary (no training): the compressor finds these strings in it. Fixed for
# _ROOT_V1, forever.
_ROOT_DICTIONARY = (
    '{"finished":"2026-01-01T00:00:00.000000Z","id":"01900000-0000-7000-8000-000000000000",'
    '"kind":"root-dns","probe":{"asn":null,"country":null,"id":""},"result":{"consistency":'
    '{"differs":[],"status":"consistent"},"identity":{"hostname_bind":"","id_server":"",'
    '"nsid":""},"integrity":{"key_tags":[20326,38696],"outcome":"iana","reason":null,'
    '"validated_at":"2026-01-01T00:00:00.000000Z"},"queries":['
    '{"aa":true,"failure":null,"nsid_hex":"","nsid_text":"","qclass":"IN","qname":".",'
    '"qtype":"SOA","rcode":"NOERROR","rtt_seconds":0.0,"serial":2026010100,"size_bytes":1000,'
    '"tc":false,"transport":"udp","wire_b64":""},'
    '{"aa":true,"failure":null,"nsid_hex":"","nsid_text":"","qclass":"IN","qname":".",'
    '"qtype":"SOA","rcode":"NOERROR","rtt_seconds":0.0,"serial":2026010100,"size_bytes":1000,'
    '"tc":false,"transport":"tcp","wire_b64":""},'
    '{"aa":true,"failure":null,"nsid_hex":null,"nsid_text":null,"qclass":"CH",'
    '"qname":"hostname.bind.","qtype":"TXT","rcode":"NOERROR","rtt_seconds":0.0,"serial":null,'
    '"size_bytes":100,"tc":false,"transport":"udp","wire_b64":""},'
    '{"aa":true,"failure":null,"nsid_hex":null,"nsid_text":null,"qclass":"CH",'
    '"qname":"id.server.","qtype":"TXT","rcode":"NOERROR","rtt_seconds":0.0,"serial":null,'
    '"size_bytes":100,"tc":false,"transport":"udp","wire_b64":""},'
    '{"aa":true,"failure":null,"nsid_hex":"","nsid_text":"","qclass":"IN","qname":".",'
    '"qtype":"DNSKEY","rcode":"NOERROR","rtt_seconds":0.0,"serial":null,"size_bytes":1000,'
    '"tc":true,"transport":"udp","wire_b64":""},'
    '{"aa":null,"failure":"dns_timeout","nsid_hex":null,"nsid_text":null,"qclass":"IN",'
    '"qname":".","qtype":"DNSKEY","rcode":null,"rtt_seconds":null,"serial":null,'
    '"size_bytes":null,"tc":null,"transport":"tcp","wire_b64":null}]},'
    '"schema":1,"software":{"name":"publiccore","version":"0.1.0"},"started":'
    '"2026-01-01T00:00:00.000000Z","target":{"address":"198.41.0.4","family":"ipv4",'
    '"letter":"a","name":"a.root-servers.net."}}'
    '"family":"ipv6","letter":"b","name":"b.root-servers.net.","address":"2001:500:200::b"'
    '"outcome":"bogus","reason":"","status":"inconsistent","differs":["serial "'
    '"failure":"truncated","failure":"tcp_refused","failure":"network_unreachable",'
    '"rcode":"SERVFAIL","rcode":"REFUSED","tc":true,"aa":false'
).encode("ascii")


@dataclasses.dataclass(frozen=True, slots=True)
class Packed:
    """A packed record: its blob and the distinct wire answers it refers to.

    ``answers`` holds (SHA-256 hex of the answer with ID 0, its compressed blob) once per
    distinct answer, in first-reference order; a store keeps each answer once under its hash.
    """

    blob: bytes
    answers: tuple[tuple[str, bytes], ...]


class _Codecs(threading.local):
    """Per-thread zstd contexts (a context is not safe to share between threads)."""

    def __init__(self) -> None:
        dictionary = zstandard.ZstdCompressionDict(
            _ROOT_DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT
        )
        self.plain = zstandard.ZstdCompressor(level=LEVEL)
        dictionary.precompute_compress(level=LEVEL)
        self.root = zstandard.ZstdCompressor(dict_data=dictionary)
        self.unplain = zstandard.ZstdDecompressor()
        self.unroot = zstandard.ZstdDecompressor(dict_data=dictionary)


_codecs = _Codecs()


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


_ANSWER_CACHE_SIZE = 4096
_answer_cache: dict[bytes, bytes] = {}  # digest → answer blob, the most recent first out


def _answer_blob(digest: bytes, wire: bytes) -> bytes:
    """The compressed answer (kept: the same answer comes back in many records)."""
    blob = _answer_cache.get(digest)
    if blob is None:
        blob = _codecs.plain.compress(wire)
        if len(_answer_cache) >= _ANSWER_CACHE_SIZE:
            _answer_cache.clear()  # simple, bounded; refilled by the answers of the next records
        _answer_cache[digest] = blob
    return blob


def _cut(text: str) -> tuple[bytes, bytes] | None:
    """(DNS ID, wire with ID 0) of canonical base64 ``text``; None when it stays inline."""
    if len(text) % 4 or len(text) < _MIN_ANSWER_TEXT:
        return None
    try:
        wire = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or a character that is not ASCII
        return None
    if len(wire) < MIN_ANSWER_BYTES:
        return None
    if binascii.b2a_base64(wire, newline=False) != text.encode("ascii"):
        return None  # valid but not canonical (padding bits set): kept as written
    return wire[:2], b"\0\0" + wire[2:]


def pack(body: str, kind: str) -> Packed:
    """Pack a record's canonical JSON ``body`` of record kind ``kind``.

    Returns the record's blob and its distinct answers. ``unpack(blob, dict(answers)) == body``
    for every text; only a ``root-dns`` body has answers cut out, other kinds just compress.
    """
    if kind != "root-dns":
        return Packed(bytes([_PLAIN]) + _codecs.plain.compress(_encode(body)), ())
    refs = bytearray()
    pieces: list[str] = []
    answers: dict[str, bytes] = {}
    count = 0
    start = 0  # where the text not yet copied begins
    at = body.find(_KEY)
    while at >= 0:
        begin = at + len(_KEY)
        end = body.find('"', begin)
        if end < 0:
            break
        cut = _cut(body[begin:end])
        if cut is not None:
            dns_id, wire = cut
            digest = hashlib.sha256(wire).digest()
            pieces.append(body[start:begin])
            refs += digest + dns_id + _varint(begin - start)
            start = end
            count += 1
            key = digest.hex()
            if key not in answers:
                answers[key] = _answer_blob(digest, wire)
        at = body.find(_KEY, end)
    pieces.append(body[start:])
    payload = _varint(count) + bytes(refs) + _encode("".join(pieces))
    return Packed(bytes([_ROOT_V1]) + _codecs.root.compress(payload), tuple(answers.items()))


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _decode(data: bytes) -> str:
    return data.decode("utf-8", "surrogatepass")


def _payload(blob: bytes) -> tuple[int, bytes]:
    """The version byte and decompressed payload of ``blob``; raise StoreError."""
    if not blob:
        raise StoreError("empty record blob")
    version = blob[0]
    try:
        if version == _PLAIN:
            return version, _codecs.unplain.decompress(blob[1:])
        if version == _ROOT_V1:
            return version, _codecs.unroot.decompress(blob[1:])
    except zstandard.ZstdError as exc:
        raise StoreError(f"corrupt record blob: {exc}") from None
    raise StoreError(f"unknown record blob version {version}")


def _refs(payload: bytes) -> tuple[list[tuple[bytes, bytes, int]], int]:
    """The refs (digest, DNS ID, gap) of a _ROOT_V1 payload and where its template starts."""
    count, pos = _read_varint(payload, 0)
    refs = []
    for _ in range(count):
        digest = payload[pos : pos + _DIGEST_BYTES]
        dns_id = payload[pos + _DIGEST_BYTES : pos + _DIGEST_BYTES + 2]
        gap, pos = _read_varint(payload, pos + _DIGEST_BYTES + 2)
        refs.append((digest, dns_id, gap))
    return refs, pos


def answer_refs(blob: bytes) -> tuple[str, ...]:
    """The SHA-256 hex of every distinct answer ``blob`` refers to (what ``unpack`` needs).

    Raises StoreError when the blob is not one ``pack`` made.
    """
    version, payload = _payload(blob)
    if version == _PLAIN:
        return ()
    try:
        refs, _ = _refs(payload)
    except IndexError:
        raise StoreError("corrupt record blob: truncated refs") from None
    return tuple(dict.fromkeys(digest.hex() for digest, _, _ in refs))


def expand(blob: bytes, lookup: Callable[[str], bytes]) -> str:
    """The body ``blob`` was packed from; ``lookup(sha256 hex)`` returns an answer's blob.

    Raises StoreError for a blob or answer blob that is corrupt, and whatever ``lookup`` raises
    for an answer it does not have.
    """
    version, payload = _payload(blob)
    if version == _PLAIN:
        return _decode(payload)
    try:
        refs, pos = _refs(payload)
        template = _decode(payload[pos:])
    except (IndexError, UnicodeDecodeError):
        raise StoreError("corrupt record blob: bad refs or template") from None
    out: list[str] = []
    at = 0
    wires: dict[bytes, bytes] = {}
    for digest, dns_id, gap in refs:
        out.append(template[at : at + gap])
        at += gap
        if digest not in wires:
            try:
                wires[digest] = _codecs.unplain.decompress(lookup(digest.hex()))
            except zstandard.ZstdError as exc:
                raise StoreError(f"corrupt answer blob {digest.hex()}: {exc}") from None
        out.append(binascii.b2a_base64(dns_id + wires[digest][2:], newline=False).decode("ascii"))
    out.append(template[at:])
    return "".join(out)


def unpack(blob: bytes, answers: Mapping[str, bytes]) -> str:
    """The body ``blob`` was packed from, its answers' blobs given by SHA-256 hex.

    Raises StoreError for a corrupt blob or an answer missing from ``answers``.
    """

    def lookup(key: str) -> bytes:
        try:
            return answers[key]
        except KeyError:
            raise StoreError(f"record blob refers to missing answer {key}") from None

    return expand(blob, lookup)
