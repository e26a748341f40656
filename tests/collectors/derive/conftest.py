"""Correctness tests use the DNS lab (network namespaces with real NSD servers)."""

from tests.lab.plugin import dns_lab, dns_lab_default, make_dns_lab, make_dns_lab_module

__all__ = ["dns_lab", "dns_lab_default", "make_dns_lab", "make_dns_lab_module"]
