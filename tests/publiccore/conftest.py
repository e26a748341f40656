"""``publiccore run`` is tested in the DNS lab (network namespaces with real NSD servers)."""

from tests.lab.plugin import dns_lab_default

__all__ = ["dns_lab_default"]
