"""Benchmark suite of the controller: `python -m bench` (see bench/README)."""
