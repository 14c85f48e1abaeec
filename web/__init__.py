"""The desk's web side: for now the health page and /metrics."""
