"""The one exception root of the project and its few specialisations."""


class PubliccoreError(Exception):
    """Root of every error publiccore raises on purpose."""


class ConfigError(PubliccoreError):
    """A configuration file or setting is unusable."""


class InputError(PubliccoreError):
    """A user-supplied file (hints, anchors, MRT, dataset) cannot be read or parsed."""


class RecordError(PubliccoreError):
    """A record is malformed. ``path`` names the offending field (``result.queries[2].rcode``)."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        super().__init__(f"{path}: {reason}" if path else reason)


class StoreError(PubliccoreError):
    """The store cannot be opened or is at an unknown schema version."""
