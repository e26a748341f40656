"""pytest fixtures for the DNS lab.

Active automatically for tests under ``tests/lab/`` (``conftest.py`` imports
them).  Elsewhere, import them into your conftest::

    from tests.lab.plugin import dns_lab, dns_lab_default, make_dns_lab  # noqa: F401

(pyproject.toml puts the repository root on ``sys.path`` for pytest, so the
lab is imported as ``tests.lab``; ``tests/probes`` etc. must not get an
``__init__.py``, which would shadow the real ``probes`` package.)

Fixtures:

``dns_lab_default`` (module scope)
    a=iana, b=alternate, c=unsigned, d=silent, e=notcp, f=iana delay 100 ms
    (one-way; RTT ~200 ms), g=iana-other-serial.
``make_dns_lab`` (function scope) / ``make_dns_lab_module`` (module scope)
    factory ``make_dns_lab(specs, **build_lab_kwargs) -> DnsLab``; every lab
    it built is torn down at the end of the fixture's scope.
``dns_lab`` (function scope)
    ``@pytest.mark.parametrize("dns_lab", [specs], indirect=True)``; without a
    param it builds the default set.

All of them ``pytest.skip`` when the lab can't run here (not root, netns not
permitted, nsd/ldns/nft missing, root zone data missing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

from .dnslab import DEFAULT_LAB_SPECS, DnsLab, LabUnavailable, SpecLike, build_lab

MakeLab = Callable[..., DnsLab]


def _factory(stack: contextlib.ExitStack, tmp_path_factory: pytest.TempPathFactory) -> MakeLab:
    def make(specs: Iterable[SpecLike] = DEFAULT_LAB_SPECS, **kwargs: Any) -> DnsLab:
        try:
            return stack.enter_context(
                build_lab(list(specs), tmp_path_factory.mktemp("dnslab"), **kwargs)
            )
        except LabUnavailable as exc:
            pytest.skip(f"DNS lab unavailable: {exc}")

    return make


@pytest.fixture(scope="module")
def dns_lab_default(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsLab]:
    with contextlib.ExitStack() as stack:
        lab = _factory(stack, tmp_path_factory)(DEFAULT_LAB_SPECS)
        print(f"\n[dnslab] default lab built in {lab.build_seconds:.2f}s")
        yield lab


@pytest.fixture
def make_dns_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeLab]:
    with contextlib.ExitStack() as stack:
        yield _factory(stack, tmp_path_factory)


@pytest.fixture(scope="module")
def make_dns_lab_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeLab]:
    with contextlib.ExitStack() as stack:
        yield _factory(stack, tmp_path_factory)


@pytest.fixture
def dns_lab(request: pytest.FixtureRequest, make_dns_lab: MakeLab) -> DnsLab:
    specs = getattr(request, "param", None)
    return make_dns_lab(DEFAULT_LAB_SPECS if specs is None else specs)
