"""What a round asks for RSSAC047 §5.3 correctness, chosen deterministically from its round id.

Besides ``. SOA`` and ``. DNSKEY`` (asked anyway), every round asks each letter ``. NS``, one
TLD's ``NS`` (a referral) and one TLD's ``DS``, and in about ``negative_share`` of rounds the
expected-negative name ``www.rssac047-test.<10 random letters>.`` (type A). The TLDs come from
``TLDS``, a shipped list of TLDs delegated (and, but for a few, signed) in every root zone
publiccore ships or tests against (2014 to 2023); ``arpa`` is asked for its DS only, because
most letters serve ``arpa`` authoritatively (RSSAC047 [unt]). Every letter of a round gets the
same questions, so the letters' answers are comparable; successive rounds rotate through the
list by their (random, time-ordered) round ids. The collector judges the answers
(``publiccore.collectors.derive.correctness``); the probe only asks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import string

# Delegated in the root zones of 2014-06-25 and 2023-05-11 (shared/data/root).
TLDS: tuple[str, ...] = (
    "com", "net", "org", "arpa", "de", "uk", "nl", "jp", "br", "fr", "ru", "cn", "in", "au",
    "ca", "it", "es", "se", "ch", "no", "fi", "dk", "pl", "be", "at", "cz", "kr", "mx", "ar",
    "za", "nz", "ie", "pt", "gr", "il", "tr", "ua", "edu", "gov", "int", "mil", "info", "biz",
    "mobi", "name", "pro", "aero", "coop", "museum", "jobs", "travel", "cat", "asia", "tel",
    "post",
)  # fmt: skip
NS_EXCLUDED: frozenset[str] = frozenset({"arpa"})  # served authoritatively by most letters
NEGATIVE_PREFIX = "www.rssac047-test."
NEGATIVE_LABEL_LETTERS = 10


@dataclasses.dataclass(frozen=True, slots=True)
class CorrectnessPlan:
    """The correctness questions of one round (names absolute, with the final dot)."""

    ns_tld: str
    ds_tld: str
    negative_qname: str | None = None


def plan(
    seed: str, *, negative_share: float = 0.1, tlds: tuple[str, ...] = TLDS
) -> CorrectnessPlan:
    """The questions of the round whose id is ``seed``: the same seed gives the same plan.

    Raises ValueError for an empty TLD list or a share outside [0, 1].
    """
    if not 0.0 <= negative_share <= 1.0:
        raise ValueError("negative_share must be within [0, 1]")
    ns_tlds = [t for t in tlds if t not in NS_EXCLUDED]
    if not ns_tlds:
        raise ValueError("no TLD to ask NS for")
    digest = hashlib.sha256(seed.encode("utf-8")).digest()
    ns_tld = ns_tlds[int.from_bytes(digest[0:4], "big") % len(ns_tlds)]
    ds_tld = tlds[int.from_bytes(digest[4:8], "big") % len(tlds)]
    draw = int.from_bytes(digest[8:12], "big") / 2**32  # uniform in [0, 1)
    negative = None
    if draw < negative_share:
        letters = string.ascii_lowercase
        label = "".join(letters[b % 26] for b in digest[12 : 12 + NEGATIVE_LABEL_LETTERS])
        negative = f"{NEGATIVE_PREFIX}{label}."
    return CorrectnessPlan(ns_tld=f"{ns_tld}.", ds_tld=f"{ds_tld}.", negative_qname=negative)
