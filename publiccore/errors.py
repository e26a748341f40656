"""The one exception root of the project and its few specialisations."""

from typing import Literal

# Why a record is refused, as the ingest API names it (docs/ingest.md).
RecordErrorCode = Literal[
    "missing_field",
    "unknown_field",
    "wrong_type",
    "invalid_value",
    "unknown_schema",
    "unknown_kind",
]


class PubliccoreError(Exception):
    """Root of every error publiccore raises on purpose."""


class ConfigError(PubliccoreError):
    """A configuration file or setting is unusable."""


class InputError(PubliccoreError):
    """A user-supplied file (hints, anchors, MRT, dataset) cannot be read or parsed."""


class RecordError(PubliccoreError):
    """A record is malformed. ``path`` names the offending field (``result.queries[2].rcode``),
    ``code`` says what kind of fault it is (the ingest API's error code)."""

    def __init__(
        self, reason: str, path: str = "", *, code: RecordErrorCode = "invalid_value"
    ) -> None:
        self.reason = reason
        self.path = path
        self.code: RecordErrorCode = code
        super().__init__(f"{path}: {reason}" if path else reason)


class StoreError(PubliccoreError):
    """The store cannot be opened or is at an unknown schema version."""
