"""DNS root lab for tests: network namespaces + NSD (see README.md)."""
