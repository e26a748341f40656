"""Fixtures for the DNS lab (see plugin.py for the list)."""

from .plugin import dns_lab, dns_lab_default, make_dns_lab, make_dns_lab_module

__all__ = ["dns_lab", "dns_lab_default", "make_dns_lab", "make_dns_lab_module"]
