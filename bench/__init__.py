"""Benchmark scripts. They report numbers; tests never assert on timings."""
