"""Parsers: what a message says. The registry (registry.py) tries the formats (one file each,
formats/) and gives a disposition and reports; base.py holds what every parser takes and gives."""
