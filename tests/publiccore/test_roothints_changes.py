"""The root addresses in force on days between the bundled hints files (address changes)."""

from __future__ import annotations

import datetime as dt
import pathlib

import pytest

from publiccore import roothints
from publiccore.errors import InputError


def _day(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def _addresses(version: roothints.HintsVersion) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for server in version.servers:
        out[(server.letter, "ipv4")] = set(server.ipv4)
        out[(server.letter, "ipv6")] = set(server.ipv6)
    return out


def test_every_difference_between_consecutive_bundled_files_is_a_dated_change() -> None:
    """Each address that differs between two consecutive bundled files has a change dated
    between them (or, for a file's new address, a chain of changes leading to it)."""
    history = roothints.bundled_history()
    changes = roothints.load_changes()
    assert history.changes == changes and len(changes) == 10
    # B's and C's first IPv6 addresses came between the 2011 and the 2014 file; no dated
    # source found (the table says so): the 2014 file's own addresses
    in_2014 = _addresses(next(v for v in history.versions if v.zone_version == 2014060201))
    undated = {key: in_2014[key] for key in (("b", "ipv6"), ("c", "ipv6"))}
    for before, after in zip(history.versions, history.versions[1:], strict=False):
        was, now = _addresses(before), _addresses(after)
        if before.zone_version == 2011060800:
            for key, added in undated.items():
                was[key] = was.get(key, set()) | added
        between = [c for c in changes if before.valid_from < c.effective <= after.valid_from]
        for key in sorted(was.keys() | now.keys()):
            removed = was.get(key, set()) - now.get(key, set())
            added = now.get(key, set()) - was.get(key, set())
            ours = [c for c in between if (c.letter, c.family) == key]
            # Replaying the changes in order turns the older file's addresses into the newer's.
            replayed = set(was.get(key, set()))
            for change in ours:
                if change.old is not None:
                    assert change.old in replayed, (key, change)
                    replayed.discard(change.old)
                replayed.add(change.new)
            assert replayed == now.get(key, set()), (key, before.path, after.path)
            assert bool(removed or added) == bool(ours), key


# Addresses by reference to the data (no root address written here): the old or new address of
# the bundled change of (letter, family) effective that day, or a letter's address in the hints
# file in force.
Ref = tuple[str, str, str, str | None]


def _address(ref: Ref, day: dt.datetime) -> str:
    which, letter, family, effective = ref
    if which == "hints":
        versions = [v for v in roothints.bundled_history().versions if v.valid_from <= day]
        server = next(s for s in versions[-1].servers if s.letter == letter)
        return (server.ipv4 if family == "ipv4" else server.ipv6)[0]
    change = next(
        c
        for c in roothints.load_changes()
        if (c.letter, c.family) == (letter, family) and c.effective.date().isoformat() == effective
    )
    address = change.old if which == "old" else change.new
    assert address is not None
    return address


B4_2017, B6_2017 = ("b", "ipv4", "2017-10-24"), ("b", "ipv6", "2017-06-01")
B4_2023, B6_2023 = ("b", "ipv4", "2023-11-27"), ("b", "ipv6", "2023-11-27")


@pytest.mark.parametrize(
    ("ref", "day", "letter"),
    [
        (("old", *B4_2017), "2016-06-01", "b"),  # B's IPv4 before 2017-10-24
        (("new", *B4_2017), "2016-06-01", None),  # not yet B's
        (("new", *B4_2017), "2019-06-01", "b"),  # B 2017-10-24 … 2023-11-27 (no bundled file)
        (("old", *B4_2017), "2019-06-01", None),  # the old address: retired by the hints
        (("old", *B6_2017), "2017-05-31", "b"),
        (("new", *B6_2017), "2017-06-01", "b"),  # B's IPv6 from 2017-06-01
        (("old", *B6_2017), "2017-06-01", None),
        (("new", *B4_2023), "2024-01-15", "b"),  # B from 2023-11-27, before the 2024-08-14 file
        (("new", *B6_2023), "2024-01-15", "b"),
        (("old", *B4_2023), "2024-09-01", "b"),  # old B kept answering until 2024-11-27
        (("old", *B4_2023), "2024-11-27", None),
        (("new", "h", "ipv4", "2015-12-01"), "2015-12-01", "h"),
        (("old", "h", "ipv4", "2015-12-01"), "2015-12-01", None),
        (("new", "l", "ipv6", "2016-03-23"), "2016-03-23T20:59:59", None),  # 21:00 UTC
        (("new", "l", "ipv6", "2016-03-23"), "2016-03-23T21:00:00", "l"),
        (("new", "e", "ipv6", "2016-08-25"), "2016-08-25", "e"),
        (("new", "g", "ipv6", "2016-10-24"), "2016-10-24", "g"),
        (("new", "d", "ipv4", "2013-01-03"), "2013-01-03", "d"),
        (("old", "d", "ipv4", "2013-01-03"), "2013-01-03", None),
        (("old", *B6_2017), "2014-06-01", None),  # undated addition: in force from the 2014 file
        (("hints", "k", "ipv4", None), "2019-06-01", "k"),  # unchanged: as in the file in force
    ],
)
def test_target_at_follows_the_changes(ref: Ref, day: str, letter: str | None) -> None:
    address = _address(ref, _day(day))
    target = roothints.bundled_history().target_at(address, _day(day))
    assert (target.letter if target else None) == letter
    if target is not None:
        assert target.address == address
        assert target.name == f"{letter}.root-servers.net."
        assert target.family == ("ipv6" if ":" in address else "ipv4")


def test_own_hints_files_come_without_the_bundled_changes() -> None:
    paths = roothints.bundled_history_paths()
    history = roothints.HintsHistory.load(paths)
    assert history.changes == ()
    address = _address(("new", *B4_2017), _day("2019-06-01"))
    assert history.target_at(address, _day("2019-06-01")) is None


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('letter = "n"\nfamily = "ipv4"\nnew = "192.0.2.1"\neffective = "2020-01-01"', "letter"),
        ('letter = "b"\nfamily = "ipv6"\nnew = "192.0.2.1"\neffective = "2020-01-01"', "ipv6"),
        ('letter = "b"\nfamily = "ipv4"\nnew = "192.0.2.1"\neffective = "soon"', "RFC 3339"),
        ('letter = "b"\nfamily = "ipv4"\nnew = "192.0.2.1"\neffective = "2020-01-01"', "source"),
    ],
)
def test_a_bad_change_entry_is_one_clear_error(
    tmp_path: pathlib.Path, entry: str, message: str
) -> None:
    path = tmp_path / "changes.toml"
    path.write_text(f"[[change]]\n{entry}\n")
    with pytest.raises(InputError, match=message) as info:
        roothints.load_changes(path)
    assert "change 1" in str(info.value) and "\n" not in str(info.value)
