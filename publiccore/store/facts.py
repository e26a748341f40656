"""Parse once: the typed facts of a root-dns record, and their per-bucket sums.

When a record enters the store (``Store.put_records``, the one write path) it is parsed once and
its facts are written, in the same transaction, to typed rows (``root_queries``: one row per
``. SOA`` query) and folded into mergeable per-bucket aggregates (``agg_root_*`` tables). The
derive stage (``publiccore.collectors.derive``) merges buckets into windows; it never reads raw
records. ``publiccore store rederive`` rebuilds all of it from the raw records.

Buckets are ``BUCKET_SECONDS`` long (by the record's start time). A cell is (country, probe ASN,
source, letter, family, transport). RTTs go into logarithmic bins of ratio ``RTT_GAMMA``: a bin's
representative value is within ``RTT_RELATIVE_ERROR`` (< 1%) of every RTT in it, so a quantile
read from merged bins is within that relative error of the exact (weighted) quantile.
A round's rows (``agg_root_rounds``: per probe, round id, family and transport) keep the mask
of letters that answered and the RTTs of its answers (space-separated), for RSSAC047's RSS
availability and RSS response latency (k lowest letter latencies per vantage point and interval).
Records without a probe country are kept as raw records but have no facts (no per-country
figure can use them). An absent probe ASN is stored as ``NO_ASN`` (-1) in keys.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re
from collections.abc import Iterable

from publiccore import domains
from publiccore.records import Record
from publiccore.sites import SiteTable

BUCKET_SECONDS = 60
GENERATION = "facts-generation"  # derived_snapshots row that every rederive renews
RTT_GAMMA = 1.02
RTT_RELATIVE_ERROR = (RTT_GAMMA - 1) / (RTT_GAMMA + 1)  # 0.0099
RTT_MIN_SECONDS = 1e-6  # smaller RTTs (clock granularity) share the lowest bin
NO_ASN = -1
INTERVAL_SECONDS = 300  # RSSAC047 §4.2 measurement interval (``root_interval_serials``)
# Answers whose serial RSSAC047 publication latency uses (§5.4 [tub]: not bogus): validated to
# the IANA anchors, or from a source that did not ask for the DNSKEY set (nothing claimed)
PUBLICATION_OUTCOMES = frozenset({"iana", "not_measured"})
LETTERS = "abcdefghijklm"
_LOG_GAMMA = math.log(RTT_GAMMA)
_LETTER_SET = frozenset(LETTERS)


def bucket_of(time: float) -> float:
    """Start of the bucket that ``time`` (POSIX seconds) falls in."""
    return math.floor(time / BUCKET_SECONDS) * BUCKET_SECONDS


def interval_of(time: float) -> float:
    """Start of the RSSAC047 five-minute measurement interval (UTC grid) ``time`` falls in."""
    return math.floor(time / INTERVAL_SECONDS) * INTERVAL_SECONDS


def rtt_bin(rtt_seconds: float) -> int:
    """The logarithmic bin of an RTT."""
    return math.floor(math.log(max(rtt_seconds, RTT_MIN_SECONDS)) / _LOG_GAMMA)


def rtt_bins(rtts_seconds: Iterable[float]) -> tuple[int, ...]:
    """``rtt_bin`` of each RTT (one call for many: the derive stage's hot loop)."""
    log, floor, low, scale = math.log, math.floor, RTT_MIN_SECONDS, _LOG_GAMMA
    return tuple([floor(log(v if v > low else low) / scale) for v in rtts_seconds])


def bin_value(index: int) -> float:
    """The representative RTT of a bin: the harmonic mean of its bounds (relative error bound
    ``RTT_RELATIVE_ERROR`` for every value in the bin)."""
    low = RTT_GAMMA**index
    high = low * RTT_GAMMA
    return 2 * low * high / (low + high)


def letter_bit(letter: str) -> int:
    """The bit of a letter in a round's answered-letters mask (0 for an unknown letter)."""
    index = LETTERS.find(letter)
    return 1 << index if index >= 0 and len(letter) == 1 else 0


def mask_letters(mask: int) -> int:
    """How many letters a mask holds."""
    return int(mask).bit_count()


CellKey = tuple[float, str, int, str, str, str, str]  # bucket country asn source letter fam tr


@dataclasses.dataclass(slots=True)
class FactBatch:
    """The facts of a batch of new records, summed per key, ready to add to the tables."""

    sites: SiteTable
    skipped: int = 0  # records whose labels are outside their closed domains (no facts)
    queries: list[tuple[object, ...]] = dataclasses.field(default_factory=list)
    cells: collections.Counter[CellKey] = dataclasses.field(default_factory=collections.Counter)
    answered: collections.Counter[CellKey] = dataclasses.field(default_factory=collections.Counter)
    rtt: collections.Counter[tuple[object, ...]] = dataclasses.field(
        default_factory=collections.Counter
    )
    records: collections.Counter[tuple[object, ...]] = dataclasses.field(
        default_factory=collections.Counter
    )
    probes: collections.Counter[tuple[object, ...]] = dataclasses.field(
        default_factory=collections.Counter
    )
    site_rows: collections.Counter[tuple[object, ...]] = dataclasses.field(
        default_factory=collections.Counter
    )
    rounds: dict[tuple[object, ...], int] = dataclasses.field(default_factory=dict)
    round_rtts: dict[tuple[object, ...], list[str]] = dataclasses.field(default_factory=dict)
    sightings: dict[tuple[int, str, str], tuple[float, float]] = dataclasses.field(
        default_factory=dict
    )
    # RSSAC047 §5.4 step 1: (interval, probe, letter) → (country, lowest serial answered)
    interval_serials: dict[tuple[float, str, str], tuple[str, int]] = dataclasses.field(
        default_factory=dict
    )
    first_serials: dict[int, float] = dataclasses.field(default_factory=dict)  # step 2
    bucket_sightings: dict[tuple[float, str, str, int], float] = dataclasses.field(
        default_factory=dict
    )

    def add(self, record: Record) -> None:
        """Add one new record's facts (nothing for other kinds or without a probe country)."""
        # The write path's hot loop: counters bumped with dict.get (not Counter's __missing__),
        # attributes read once.
        result, target = record.root, record.root_target
        probe = record.probe
        country = probe.country
        if result is None or target is None or not country:
            return
        letter = target.letter.lower()
        if letter not in _LETTER_SET or not domains.is_country(country):
            # a label that no figure may carry (a record from before ingest checked domains):
            # kept as a raw record, no facts, counted
            self.skipped += 1
            return
        time = record.started.timestamp()
        bucket = bucket_of(time)
        asn = NO_ASN if probe.asn is None else probe.asn
        probe_id = probe.id
        round_id = record.round
        source = record.source_name
        family = target.family
        outcome = result.integrity.outcome
        publishable = outcome in PUBLICATION_OUTCOMES
        cells, answered_cells, rtt = self.cells, self.answered, self.rtt
        queries = self.queries
        answered_any = False
        serial = None
        bit = letter_bit(letter)
        for transport, query in result.soa_queries().items():
            cell: CellKey = (bucket, country, asn, source, letter, family, transport)
            cells[cell] = cells.get(cell, 0) + 1
            answered = query.answered
            rtt_seconds = query.rtt_seconds
            query_serial = query.serial
            if answered:
                answered_any = True
                answered_cells[cell] = answered_cells.get(cell, 0) + 1
                if rtt_seconds is not None:
                    rkey = (*cell, rtt_bin(rtt_seconds))
                    rtt[rkey] = rtt.get(rkey, 0) + 1
            if serial is None and query_serial is not None:
                serial = query_serial
            if answered and query_serial is not None and publishable:
                ikey = (interval_of(time), probe_id, letter)
                seen = self.interval_serials.get(ikey)
                if seen is None or query_serial < seen[1]:
                    self.interval_serials[ikey] = (country, query_serial)
                first = self.first_serials.get(query_serial, math.inf)
                self.first_serials[query_serial] = min(first, time)
            if round_id is not None:
                rkey = (bucket, country, asn, source, probe_id, round_id, family, transport)
                self.rounds[rkey] = self.rounds.get(rkey, 0) | (bit if answered else 0)
                if answered and rtt_seconds is not None:
                    self.round_rtts.setdefault(rkey, []).append(f"{rtt_seconds!r}")
            queries.append(
                (
                    record.id,
                    probe_id,
                    time,
                    bucket,
                    country,
                    asn,
                    source,
                    round_id,
                    letter,
                    family,
                    transport,
                    int(answered),
                    rtt_seconds,
                    query_serial,
                    outcome,
                    query.failure,
                )
            )
        if answered_any:
            identity = result.identity
            site, site_country = self.sites.site(
                letter, (identity.nsid, identity.hostname_bind, identity.id_server)
            )
            location = (
                "unknown"
                if site_country is None
                else "in_country"
                if site_country == country
                else "abroad"
            )
            skey = (bucket, country, asn, source, letter, site or "", location)
            self.site_rows[skey] = self.site_rows.get(skey, 0) + 1
        key5 = (bucket, country, asn, source, outcome)
        self.records[key5] = self.records.get(key5, 0) + 1
        key5 = (bucket, country, asn, source, probe_id)
        self.probes[key5] = self.probes.get(key5, 0) + 1
        if serial is not None:
            key3 = (serial, country, letter)
            first, last = self.sightings.get(key3, (math.inf, -math.inf))
            self.sightings[key3] = (min(first, time), max(last, time))
            key4 = (bucket, country, letter, serial)
            self.bucket_sightings[key4] = min(time, self.bucket_sightings.get(key4, math.inf))

    def extend(self, records: Iterable[Record]) -> None:
        """``add`` every record."""
        for record in records:
            self.add(record)


# Schema (migration 2), both dialects: {real} float type, {bigint} integer type, {blob} bytes.
# Raw records are kept packed (``publiccore.store.compact``): ``records.packed`` holds the blob
# (``body`` stays empty for them) and ``wire_answers`` each distinct DNS answer once.
SCHEMA_V2 = """
    ALTER TABLE records ADD COLUMN packed {blob};
    CREATE TABLE wire_answers (
        hash TEXT PRIMARY KEY,
        blob {blob} NOT NULL
    );
    CREATE TABLE root_queries (
        record_id TEXT NOT NULL,
        probe_id TEXT NOT NULL,
        time {real} NOT NULL,
        bucket {real} NOT NULL,
        country TEXT NOT NULL,
        asn {bigint} NOT NULL,
        source TEXT NOT NULL,
        round TEXT,
        letter TEXT NOT NULL,
        family TEXT NOT NULL,
        transport TEXT NOT NULL,
        answered INTEGER NOT NULL,
        rtt {real},
        serial {bigint},
        outcome TEXT NOT NULL,
        failure TEXT
    );
    CREATE INDEX root_queries_time ON root_queries (time);
    CREATE INDEX root_queries_no_round ON root_queries (time) WHERE round IS NULL;
    CREATE TABLE agg_root_cells (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, family TEXT NOT NULL,
        transport TEXT NOT NULL, sent {bigint} NOT NULL, answered {bigint} NOT NULL,
        PRIMARY KEY (country, asn, bucket, source, letter, family, transport)
    );
    CREATE TABLE agg_root_cells_all (
        bucket {real} NOT NULL, country TEXT NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, family TEXT NOT NULL,
        transport TEXT NOT NULL, sent {bigint} NOT NULL, answered {bigint} NOT NULL,
        PRIMARY KEY (bucket, country, source, letter, family, transport)
    );
    CREATE TABLE agg_root_rtt (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, family TEXT NOT NULL,
        transport TEXT NOT NULL, bin INTEGER NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (country, asn, bucket, source, letter, family, transport, bin)
    );
    CREATE TABLE agg_root_rtt_all (
        bucket {real} NOT NULL, country TEXT NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, family TEXT NOT NULL,
        transport TEXT NOT NULL, bin INTEGER NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (bucket, country, source, letter, family, transport, bin)
    );
    CREATE TABLE agg_root_records (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, outcome TEXT NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (bucket, country, asn, source, outcome)
    );
    CREATE TABLE agg_root_probes (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, probe_id TEXT NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (bucket, country, asn, source, probe_id)
    );
    CREATE TABLE agg_root_sites (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, site TEXT NOT NULL,
        location TEXT NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (country, asn, bucket, source, letter, site, location)
    );
    CREATE TABLE agg_root_sites_all (
        bucket {real} NOT NULL, country TEXT NOT NULL,
        source TEXT NOT NULL, letter TEXT NOT NULL, site TEXT NOT NULL,
        location TEXT NOT NULL, n {bigint} NOT NULL,
        PRIMARY KEY (bucket, country, source, letter, site, location)
    );
    CREATE TABLE agg_root_rounds (
        bucket {real} NOT NULL, country TEXT NOT NULL, asn {bigint} NOT NULL,
        source TEXT NOT NULL, probe_id TEXT NOT NULL, round TEXT NOT NULL,
        family TEXT NOT NULL, transport TEXT NOT NULL, letters {bigint} NOT NULL,
        rtts TEXT NOT NULL,
        PRIMARY KEY (bucket, country, asn, source, probe_id, round, family, transport)
    );
    CREATE TABLE root_serials (
        serial {bigint} NOT NULL, country TEXT NOT NULL, letter TEXT NOT NULL,
        first_seen {real} NOT NULL, last_seen {real} NOT NULL,
        PRIMARY KEY (serial, country, letter)
    );
    CREATE TABLE agg_root_serials (
        bucket {real} NOT NULL, country TEXT NOT NULL, letter TEXT NOT NULL,
        serial {bigint} NOT NULL, first_seen {real} NOT NULL,
        PRIMARY KEY (bucket, country, letter, serial)
    );
    CREATE TABLE derived_snapshots (
        name TEXT PRIMARY KEY, computed_at {real} NOT NULL, body TEXT NOT NULL
    );
    CREATE TABLE leases (
        name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires {real} NOT NULL
    )
"""

# RSSAC047 §5.4 publication latency (migration 5, appended), both dialects. Step 1, per
# five-minute interval (``bucket`` here is the interval's start), probe and letter: the lowest
# SOA serial answered over every transport and family. Step 2, per serial: its first sighting.
# Both from answered queries of records whose outcome is in PUBLICATION_OUTCOMES. The INSERTs
# fill them from the typed rows of the records already stored ({interval} rounds ``time`` down
# to its interval in the dialect's SQL).
SCHEMA_INTERVAL_SERIALS = """
    CREATE TABLE root_interval_serials (
        bucket {real} NOT NULL, probe_id TEXT NOT NULL, letter TEXT NOT NULL,
        country TEXT NOT NULL, serial {bigint} NOT NULL,
        PRIMARY KEY (bucket, probe_id, letter)
    );
    INSERT INTO root_interval_serials (bucket, probe_id, letter, country, serial)
    SELECT {interval}, probe_id, letter, MIN(country), MIN(serial) FROM root_queries
    WHERE answered = 1 AND serial IS NOT NULL AND outcome IN ('iana', 'not_measured')
    GROUP BY {interval}, probe_id, letter;
    CREATE TABLE root_serial_first (
        serial {bigint} PRIMARY KEY, first_seen {real} NOT NULL
    );
    INSERT INTO root_serial_first (serial, first_seen)
    SELECT serial, MIN(time) FROM root_queries
    WHERE answered = 1 AND serial IS NOT NULL AND outcome IN ('iana', 'not_measured')
    GROUP BY serial
"""

# Migration 7. Both dialects: the interval serials indexed by country (a country's publication
# latency reads its own vantage points' rows, not every country's of the range; the index holds
# every column the reads ask for).
SCHEMA_SERIALS_BY_COUNTRY = """
    CREATE INDEX root_interval_serials_country
    ON root_interval_serials (country, bucket, probe_id, letter, serial)
"""
# SQLite alone, the same migration: the tables with a primary key rebuilt WITHOUT ROWID, their
# rows stored in the key's order. A bucket's rows of one country then lie together (one page,
# not one page of every country's per row), and an upsert searches one B-tree, not two.
# Spelled out (AGG_TABLES is built from it): an applied migration never changes. Not in it:
# root_queries, which has no key, and root_serial_first, whose key is its rowid.
CLUSTERED_TABLES: tuple[str, ...] = (
    "agg_root_cells",
    "agg_root_cells_all",
    "agg_root_rtt",
    "agg_root_rtt_all",
    "agg_root_records",
    "agg_root_probes",
    "agg_root_sites",
    "agg_root_sites_all",
    "agg_root_rounds",
    "agg_root_serials",
    "root_serials",
    "root_interval_serials",
)


def without_rowid(schemas: Iterable[str], tables: Iterable[str]) -> str:
    """Statements that rebuild each of ``tables`` as a WITHOUT ROWID table of the same columns
    and key (its CREATE TABLE read from ``schemas``, as formatted for SQLite), rows kept."""
    created: dict[str, str] = {}
    for schema in schemas:
        for statement in schema.split(";"):
            found = re.match(r"\s*CREATE TABLE (\w+) (\(.*\))\s*$", statement, re.S)
            if found:
                created[found[1]] = found[2]
    out = []
    for table in tables:
        out += [
            f"CREATE TABLE {table}_clustered {created[table]} WITHOUT ROWID",
            f"INSERT INTO {table}_clustered SELECT * FROM {table}",
            f"DROP TABLE {table}",
            f"ALTER TABLE {table}_clustered RENAME TO {table}",
        ]
    return ";\n".join(out)


# Tables with a probe-ASN column whose rows are read per (country, ASN): their keys start so.
PER_ASN_TABLES: tuple[str, ...] = ("agg_root_cells", "agg_root_rtt", "agg_root_sites")
AGG_TABLES: tuple[str, ...] = ("root_queries", *CLUSTERED_TABLES, "root_serial_first")


def _summed(
    counter: collections.Counter[tuple[object, ...]],
) -> collections.Counter[tuple[object, ...]]:
    """Per-ASN counts summed over ASNs."""
    out: collections.Counter[tuple[object, ...]] = collections.Counter()
    get = out.get
    for key, n in counter.items():
        total = (key[0], key[1], *key[3:])  # the key without its ASN
        out[total] = get(total, 0) + n
    return out


def upserts(batch: FactBatch, *, least: str, greatest: str) -> list[tuple[str, list[tuple]]]:
    """(statement, rows) pairs that add ``batch`` to the tables (``?`` placeholders).

    ``least`` / ``greatest`` are the dialect's two-argument min/max functions.
    """
    cell_cols = "bucket, country, asn, source, letter, family, transport"
    out: list[tuple[str, list[tuple]]] = []
    if batch.queries:
        out.append(
            (
                "INSERT INTO root_queries (record_id, probe_id, time, bucket, country, asn, "
                "source, round, letter, family, transport, answered, rtt, serial, outcome, "
                "failure) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch.queries,
            )
        )
    if batch.cells:
        out.append(
            (
                f"INSERT INTO agg_root_cells ({cell_cols}, sent, answered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT ({cell_cols}) DO UPDATE SET "
                "sent = agg_root_cells.sent + excluded.sent, "
                "answered = agg_root_cells.answered + excluded.answered",
                [(*k, n, batch.answered.get(k, 0)) for k, n in batch.cells.items()],
            )
        )
        totals: dict[tuple[object, ...], int] = {}
        answered_totals: dict[tuple[object, ...], int] = {}
        answered_get = batch.answered.get
        for k, n in batch.cells.items():
            total = (k[0], k[1], *k[3:])  # the key without its ASN
            totals[total] = totals.get(total, 0) + n
            answered_totals[total] = answered_totals.get(total, 0) + answered_get(k, 0)
        all_cols = "bucket, country, source, letter, family, transport"
        out.append(
            (
                f"INSERT INTO agg_root_cells_all ({all_cols}, sent, answered) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT ({all_cols}) DO UPDATE SET "
                "sent = agg_root_cells_all.sent + excluded.sent, "
                "answered = agg_root_cells_all.answered + excluded.answered",
                [(*k, n, answered_totals[k]) for k, n in totals.items()],
            )
        )
    simple = (
        ("agg_root_rtt", f"{cell_cols}, bin", batch.rtt),
        (
            "agg_root_rtt_all",
            "bucket, country, source, letter, family, transport, bin",
            _summed(batch.rtt),
        ),
        ("agg_root_records", "bucket, country, asn, source, outcome", batch.records),
        ("agg_root_probes", "bucket, country, asn, source, probe_id", batch.probes),
        (
            "agg_root_sites",
            "bucket, country, asn, source, letter, site, location",
            batch.site_rows,
        ),
        (
            "agg_root_sites_all",
            "bucket, country, source, letter, site, location",
            _summed(batch.site_rows),
        ),
    )
    for table, cols, counter in simple:
        if counter:
            marks = ", ".join("?" * (cols.count(",") + 2))
            out.append(
                (
                    f"INSERT INTO {table} ({cols}, n) VALUES ({marks}) "
                    f"ON CONFLICT ({cols}) DO UPDATE SET n = {table}.n + excluded.n",
                    [(*k, n) for k, n in counter.items()],
                )
            )
    if batch.rounds:
        cols = "bucket, country, asn, source, probe_id, round, family, transport"
        out.append(
            (
                f"INSERT INTO agg_root_rounds ({cols}, letters, rtts) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                f"ON CONFLICT ({cols}) DO UPDATE SET "
                "letters = agg_root_rounds.letters | excluded.letters, "
                "rtts = trim(agg_root_rounds.rtts || ' ' || excluded.rtts)",
                [(*k, m, " ".join(batch.round_rtts.get(k, ()))) for k, m in batch.rounds.items()],
            )
        )
    if batch.sightings:
        out.append(
            (
                "INSERT INTO root_serials (serial, country, letter, first_seen, last_seen) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (serial, country, letter) DO UPDATE SET "
                f"first_seen = {least}(root_serials.first_seen, excluded.first_seen), "
                f"last_seen = {greatest}(root_serials.last_seen, excluded.last_seen)",
                [(*k, first, last) for k, (first, last) in batch.sightings.items()],
            )
        )
    if batch.interval_serials:
        out.append(
            (
                "INSERT INTO root_interval_serials (bucket, probe_id, letter, country, serial) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, probe_id, letter) DO UPDATE "
                f"SET serial = {least}(root_interval_serials.serial, excluded.serial)",
                [(*k, c, s) for k, (c, s) in batch.interval_serials.items()],
            )
        )
    if batch.first_serials:
        out.append(
            (
                "INSERT INTO root_serial_first (serial, first_seen) VALUES (?, ?) "
                "ON CONFLICT (serial) DO UPDATE "
                f"SET first_seen = {least}(root_serial_first.first_seen, excluded.first_seen)",
                list(batch.first_serials.items()),
            )
        )
    if batch.bucket_sightings:
        out.append(
            (
                "INSERT INTO agg_root_serials (bucket, country, letter, serial, first_seen) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (bucket, country, letter, serial) DO UPDATE "
                f"SET first_seen = {least}(agg_root_serials.first_seen, excluded.first_seen)",
                [(*k, first) for k, first in batch.bucket_sightings.items()],
            )
        )
    return out
