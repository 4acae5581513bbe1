"""Benchmark tooling for Vigie (datasets, pirate-variant transforms, scoring)."""
