"""The correctness questions of a round: deterministic per round id, rotating over rounds."""

from __future__ import annotations

import collections
import pathlib

import pytest
from publiccore.probes import correctness

from publiccore.records import uuid7


def test_same_round_same_questions_and_the_names_are_well_formed() -> None:
    seed = "0190f3c2-7a6b-7c4d-8e9f-0123456789ab"
    assert correctness.plan(seed) == correctness.plan(seed)
    always = correctness.plan(seed, negative_share=1.0)
    never = correctness.plan(seed, negative_share=0.0)
    assert never.negative_qname is None
    assert (always.ns_tld, always.ds_tld) == (never.ns_tld, never.ds_tld)
    name = always.negative_qname
    assert name is not None and name.startswith("www.rssac047-test.") and name.endswith(".")
    label = name.split(".")[2]
    assert len(label) == 10 and label.isascii() and label.isalpha() and label.islower()
    with pytest.raises(ValueError):
        correctness.plan(seed, negative_share=1.5)


def test_rounds_rotate_and_about_a_tenth_ask_the_negative_name() -> None:
    plans = [correctness.plan(uuid7()) for _ in range(2000)]
    ns = collections.Counter(p.ns_tld for p in plans)
    ds = collections.Counter(p.ds_tld for p in plans)
    assert "arpa." not in ns and "arpa." in ds  # arpa: DS only
    assert len(ns) == len(correctness.TLDS) - 1 and len(ds) == len(correctness.TLDS)
    negatives = sum(p.negative_qname is not None for p in plans)
    assert 120 <= negatives <= 280  # 10 % of 2000 = 200, binomial sd about 13


def test_every_shipped_tld_is_delegated_in_both_real_zones(shared_data: pathlib.Path) -> None:
    for path in ("dns_audit/root.zone", "dns-root-data/root.zone"):
        delegated = set()
        for line in (shared_data / "root" / path).read_text().splitlines():
            fields = line.split()
            if len(fields) >= 5 and fields[2:4] == ["IN", "NS"] and fields[0] != ".":
                delegated.add(fields[0])
        missing = [t for t in correctness.TLDS if f"{t}." not in delegated]
        assert not missing, (path, missing)


def test_negative_share_comes_from_the_settings_and_is_held_to_its_range(
    tmp_path: pathlib.Path,
) -> None:
    from publiccore.probes import root

    from publiccore import config
    from publiccore.errors import ConfigError

    path = tmp_path / "publiccore.toml"
    path.write_text("[root]\nnegative_query_share = 0.5\n")
    settings = config.load(path)
    assert root.RootConfig.from_settings(settings.root).negative_share == 0.5
    assert root.RootConfig.from_settings(config.Settings().root).negative_share == 0.1
    path.write_text("[root]\nnegative_query_share = 1.5\n")
    with pytest.raises(ConfigError, match=r"root\.negative_query_share"):
        config.load(path)
