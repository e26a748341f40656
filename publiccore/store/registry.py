"""The probe registry's secrets: tokens are shown once, and kept only as their SHA-256.

Both the collector's ingest (authentication) and ``publiccore probes add`` / ``run`` (registration)
use these, so they live with the store's probe table rather than in either stage.
"""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """Return a fresh probe token (32 random bytes, URL-safe text); shown once, never stored."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """The only form in which a token is kept: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_probe_id() -> str:
    """Return a fresh probe id (``p`` and 12 hex digits)."""
    return "p" + secrets.token_hex(6)
