"""Benchmark tooling for Ripple (issue 5): bench/loadtool.py, bench/run_all.py."""
