"""Pure parts of collectors.aggregate: weighting, quantiles, site table, publication latency."""

from __future__ import annotations

import datetime as dt

import pytest
from publiccore.collectors import aggregate as agg
from publiccore.exporters import catalogue

from publiccore.errors import ConfigError
from publiccore.store import Observation
from tests.collectors import exact_root as exact


@pytest.mark.parametrize(
    ("counts", "cap", "shares"),
    [
        # already balanced: untouched
        ({1: 10, 2: 10, 3: 10, 4: 10}, 0.25, {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.25}),
        # one ASN with 70 % of records is cut to 25 %, the rest share 75 % in proportion
        ({1: 70, 2: 10, 3: 10, 4: 5, 5: 5}, 0.25, {1: 0.25, 2: 0.25, 3: 0.25, 4: 0.125, 5: 0.125}),
        # fewer ASNs than 1 / cap: equal shares
        ({1: 90, 2: 10}, 0.25, {1: 0.5, 2: 0.5}),
        # cap 1: no down-weighting at all
        ({1: 90, 2: 10}, 1.0, {1: 0.9, 2: 0.1}),
        # probes without an ASN count as one group
        ({None: 3, 7: 3, 8: 3, 9: 3}, 0.25, {None: 0.25, 7: 0.25, 8: 0.25, 9: 0.25}),
    ],
)
def test_asn_weights_cap_each_asn_share(counts, cap, shares):
    weights = agg.asn_weights(counts, cap)
    total = sum(counts[a] * weights[a] for a in counts)
    assert total == pytest.approx(sum(counts.values()))
    for asn, share in shares.items():
        assert counts[asn] * weights[asn] / total == pytest.approx(share)


@pytest.mark.parametrize(
    ("pairs", "q", "expected"),
    [
        ([(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)], 0.5, 2.0),
        ([(4.0, 1), (1.0, 1), (3.0, 1)], 0.5, 3.0),
        ([(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)], 0.9, 4.0),
        ([(1.0, 3), (10.0, 1)], 0.5, 1.0),  # weight 3 on the low value
        ([(1.0, 1), (10.0, 3)], 0.5, 10.0),
        ([(5.0, 1)], 0.99, 5.0),
    ],
)
def test_weighted_quantile(pairs, q, expected):
    assert agg.weighted_quantile(pairs, q) == expected


@pytest.mark.parametrize(
    ("letter", "identity", "country"),
    [
        ("k", "ns1.nl-ams.k.ripe.net", "NL"),
        ("k", "ns2.jp-tyo.k.ripe.net", "JP"),
        ("k", "k3.ams-ix.k.ripe.net", None),  # old format: no code we can read
        ("f", "pek2b.f.root-servers.org", "CN"),
        ("f", "MAD1F.F.ROOT-SERVERS.ORG", "ES"),
        ("c", "lax1a.c.root-servers.org", "US"),
        ("h", "001.hkg.h.root-servers.org", "HK"),
        ("e", "c01.HKG.eroot", "HK"),
        ("l", "ods01.l.root-servers.org", "UA"),
        ("l", "aa.de-fra.l.root", "DE"),
        ("m", "M-NRT-JPNAP-1", "JP"),
        ("m", "M-CDG-1", "FR"),
        ("j", "rootns-elpek3", "CN"),
        ("a", "nnn1-lon3", "GB"),
        ("b", "b3-sin", "SG"),
        ("b", "b4", None),  # no site code
        ("i", "s1.bei", "CN"),  # Netnod's own code table
        ("i", "s1.zzz", None),  # unknown code: never guessed
        ("d", "sgsg2.droot", None),  # D-root: no reliable pattern
        ("g", "anything", None),
        ("f", "xyz1a.f.root-servers.org", None),  # pattern matches, code unknown
        ("k", None, None),
    ],
)
def test_bundled_site_table(letter, identity, country):
    assert agg.load_sites().locate(letter, [identity]) == country


def test_site_table_falls_back_to_the_next_identity():
    sites = agg.load_sites()
    assert sites.locate("k", [None, "garbage", "ns1.de-fra.k.ripe.net"]) == "DE"


def test_site_table_rejects_bad_country(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text('[letters.k]\ncodes = "x"\npatterns = []\n[codes.x]\nams = "XX"\n')
    with pytest.raises(ConfigError, match="XX"):
        agg.load_sites(path)


def test_operators_point_aggregate_sites_at_their_own_table(tmp_path):
    from publiccore.config import AggregateSettings
    from publiccore.store.sqlite import SqliteStore

    path = tmp_path / "sites.toml"
    path.write_text(
        '[letters.k]\ncodes = "x"\npatterns = ["(?P<site>[a-z]{3})-.*"]\n[codes.x]\nams = "NL"\n'
    )
    store = SqliteStore(str(tmp_path / "s.sqlite"))
    try:
        mine = agg.Aggregator(store, AggregateSettings(sites=str(path)))
        bundled = agg.Aggregator(store, AggregateSettings())
    finally:
        store.close()
    assert mine.sites.locate("k", ["ams-anything"]) == "NL"
    assert bundled.sites.locate("k", ["ams-anything"]) is None


def row(
    t: float,
    *,
    country: str = "NL",
    letter: str = "k",
    serial: int | None = 1,
    probe: str = "p1",
    answered: bool = True,
) -> exact.RootRow:
    soa = {
        "udp": exact.SoaProbe(answered, 0.01 if answered else None, serial if answered else None)
    }
    return exact.RootRow(
        time=t,
        probe=probe,
        asn=1,
        country=country,
        letter=letter,
        family="ipv4",
        soa=soa,
        identities=(None, None, None),
        outcome="iana",
    )


def sighting(t: float, *, letter: str = "k", serial: int = 1) -> agg.Sighting:
    return agg.Sighting(time=t, country="NL", letter=letter, serial=serial)


def test_publication_latency_needs_a_serial_change():
    tracker = agg.PublicationTracker()
    tracker.update([sighting(100, letter="a"), sighting(110, letter="k")])
    assert tracker.latency(200) == {}


def test_publication_latency_of_the_newest_serial():
    tracker = agg.PublicationTracker()
    tracker.update(
        [
            sighting(0, letter="a", serial=1),
            sighting(0, letter="k", serial=1),
            sighting(0, letter="m", serial=1),
        ]
    )
    # serial 2 first seen on a at 1000, on k at 1600; m still serves serial 1 at 2000
    tracker.update(
        [
            sighting(1000, letter="a", serial=2),
            sighting(1600, letter="k", serial=2),
            sighting(2000, letter="m", serial=1),
            sighting(1300, letter="k", serial=1),
        ]
    )
    assert tracker.latency(2500) == {("NL", "a"): 0.0, ("NL", "k"): 600.0, ("NL", "m"): 1500.0}
    tracker.update([sighting(2400, letter="m", serial=2)])  # m catches up
    assert tracker.latency(2500)[("NL", "m")] == 1400.0


def test_rounds_count_k_of_n():
    letters = "abcdefghijklm"
    good = [row(10 + i, letter=letter) for i, letter in enumerate(letters)]
    bad = [row(400 + i, letter=letter, answered=i < 7) for i, letter in enumerate(letters)]
    assert exact._rounds_available(good + bad) == [True, False]


def test_latest_observations_drop_series_missing_from_the_newest_dump():
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

    def obs(hours: float, country: str, value: float) -> Observation:
        return Observation(
            time=t0 + dt.timedelta(hours=hours),
            subject_kind="country",
            subject=country,
            metric="bgp_country_upstreams",
            value=value,
            labels={"family": "ipv4"},
        )

    latest, newest = agg.latest_observations(
        [obs(0, "NL", 10), obs(0, "RU", 20), obs(8, "NL", 11), obs(9, "XX", 1)],
        until=(t0 + dt.timedelta(hours=8.5)).timestamp(),
    )
    series = catalogue.observation_series(latest)
    assert series == {"publiccore_bgp_country_upstreams": {("NL", "ipv4"): 11.0}}
    assert newest == (t0 + dt.timedelta(hours=8)).timestamp()


def test_servers_of_one_site_count_as_one_site():
    sites = agg.load_sites()
    assert sites.site("k", ["ns1.nl-ams.k.ripe.net"]) == ("nl-ams", "NL")
    assert sites.site("k", ["ns2.nl-ams.k.ripe.net"]) == ("nl-ams", "NL")
    assert sites.site("f", ["ams1c.f.root-servers.org"]) == ("ams", "NL")
    assert sites.site("d", ["sgsg2.droot"]) == ("sgsg2.droot", None)  # unread: the identity
    assert sites.site("k", [None, None, None]) == (None, None)


def test_site_table_on_real_l_root_nsids(shared_data):
    """RIPE Atlas msm 1071935 (2013): real NSIDs of L-root instances, located by the table."""
    import base64
    import json

    import dns.edns
    import dns.message

    path = shared_data / "atlas" / "ripe-atlas-monitor" / "1071935.json"
    results = json.loads(path.read_text())["results"]
    sites = agg.load_sites()
    located = set()
    for result in results:
        message = dns.message.from_wire(base64.b64decode(result["result"]["abuf"]))
        (nsid,) = [o for o in message.options if o.otype == dns.edns.OptionType.NSID]
        located.add((nsid.nsid.decode(), sites.locate("l", [nsid.nsid.decode()])))
    assert located == {
        ("ods01.l.root-servers.org", "UA"),
        ("atl01.l.root-servers.org", "US"),
        ("her01.l.root-servers.org", "GR"),
    }
