"""Benchmarks: scripts that print numbers. Nothing in CI fails on a figure."""
