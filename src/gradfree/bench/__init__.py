"""Benchmarks, reports and performance measurements."""
