"""publiccore: open measurement of the Internet's public core (DNS root, routing, borders)."""

__version__ = "0.1.0"
SOFTWARE_NAME = "publiccore"
