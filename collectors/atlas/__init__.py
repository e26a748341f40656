"""RIPE Atlas as a second source: Atlas DNS and traceroute results → publiccore records.

``files`` reads result files, ``probemeta`` the probe archive, ``mapping`` turns one result into
a record (or a counted skip), ``importer`` writes them through the store's one write path, and
``api`` pages the Atlas REST API and follows measurements. See docs/atlas.md.
"""
