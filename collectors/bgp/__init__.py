"""BGP collector: MRT readers (pybgpstream, bgpdump), route visibility per prefix and country,
root-server prefixes and origins, international upstream diversity. See docs/bgp.md."""
