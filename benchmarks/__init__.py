"""Benchmarks: each ``bench_*.py`` module has ``run(args) -> list of result rows``.

Every benchmark compares against a named baseline in the same run and prints the ratio.
"""
