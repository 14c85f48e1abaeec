"""Parsers: one module per report format (see the parsers issue); shared header reading for now."""
