"""Shared test fixtures: where the real public data lives, and the netns lab plugins."""

from __future__ import annotations

import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def shared_data_dir() -> pathlib.Path:
    """``../shared/data`` beside the checkout (override with ``PUBLICCORE_SHARED_DATA``)."""
    return pathlib.Path(os.environ.get("PUBLICCORE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real public data not found at {path} (set PUBLICCORE_SHARED_DATA)")
    return path
