"""The root-server site table: which anycast site (and country) a server's identity names.

Read from ``publiccore/data/root_sites.toml`` (or an operator's own table, ``[aggregate] sites``).
Used when a record enters the store (the site of an answer is a typed fact) and by the derive
stage.
"""

from __future__ import annotations

import dataclasses
import functools
import pathlib
import re
import tomllib
from collections.abc import Iterable, Mapping
from importlib import resources

import pycountry

from publiccore.errors import ConfigError


@dataclasses.dataclass(frozen=True, slots=True)
class SiteTable:
    """Per-letter identity patterns and code tables (``publiccore/data/root_sites.toml``)."""

    patterns: Mapping[str, tuple[re.Pattern[str], ...]]
    codes: Mapping[str, Mapping[str, str]]  # letter → site code → ISO country

    cache: dict[tuple[str, tuple[str | None, ...]], tuple[str | None, str | None]] = (
        dataclasses.field(default_factory=dict, compare=False, repr=False)
    )

    def locate(self, letter: str, identities: Iterable[str | None]) -> str | None:
        """Return the ISO country of the site named by the first identity that maps, or None."""
        return self.site(letter, identities)[1]

    def site(self, letter: str, identities: Iterable[str | None]) -> tuple[str | None, str | None]:
        """(site key, ISO country or None) for a record's identities (NSID, hostname.bind, …).

        The site key is the location code the table reads (``nl-ams``, ``ams``), so several
        servers of one site count once; for an identity the table cannot read, the identity
        itself. Both are None without any identity.
        """
        key = (letter, tuple(identities))
        if key not in self.cache:
            if len(self.cache) > 100_000:
                self.cache.clear()
            self.cache[key] = self._site(letter, key[1])
        return self.cache[key]

    def _site(
        self, letter: str, identities: tuple[str | None, ...]
    ) -> tuple[str | None, str | None]:
        patterns = self.patterns.get(letter, ())
        codes = self.codes.get(letter, {})
        first: str | None = None
        for identity in identities:
            if not identity:
                continue
            text = identity.strip().lower()
            first = first or text
            for pattern in patterns:
                match = pattern.fullmatch(text)
                if match is None:
                    continue
                groups = match.groupdict()
                cc, site = groups.get("cc"), groups.get("site")
                where = "-".join(g for g in (cc, site) if g) or text
                if cc and _is_country(cc):
                    return where, cc.upper()
                if site and site in codes:
                    return where, codes[site]
                first = where
        return first, None


@functools.lru_cache(maxsize=1024)
def _is_country(code: str) -> bool:
    return pycountry.countries.get(alpha_2=code.upper()) is not None


def bundled_sites_path() -> pathlib.Path:
    """The site table shipped with publiccore."""
    return pathlib.Path(str(resources.files("publiccore") / "data" / "root_sites.toml"))


def load_sites(path: str | pathlib.Path | None = None) -> SiteTable:
    """Read a site table (the bundled one when ``path`` is None); raise ConfigError."""
    chosen = pathlib.Path(path) if path else bundled_sites_path()
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read site table {chosen}: {exc}") from None
    tables = data.get("codes", {})
    patterns: dict[str, tuple[re.Pattern[str], ...]] = {}
    codes: dict[str, dict[str, str]] = {}
    for letter, spec in data.get("letters", {}).items():
        try:
            patterns[letter] = tuple(re.compile(p) for p in spec.get("patterns", ()))
        except re.error as exc:
            raise ConfigError(f"site table {chosen}: letter {letter}: bad pattern: {exc}") from None
        table_name = spec.get("codes", "iata")
        table = tables.get(table_name)
        if table is None:
            raise ConfigError(f"site table {chosen}: letter {letter}: no [codes.{table_name}]")
        for code, country in table.items():
            if not _is_country(country):
                raise ConfigError(
                    f"site table {chosen}: [codes.{table_name}] {code}: "
                    f"{country!r} is not an ISO 3166-1 alpha-2 code"
                )
        codes[letter] = {k.lower(): v.upper() for k, v in table.items()}
    return SiteTable(patterns=patterns, codes=codes)
