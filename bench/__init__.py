"""Benchmarks: smsrelay against the naive way, measured in one run. Run with ``make bench``."""
