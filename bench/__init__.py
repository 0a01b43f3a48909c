"""Benchmarks: printed timings, never asserted (tests check behaviour, not wall-clock time).

``python -m bench.compare`` measures wfrunner against plain Celery on the same Redis.
"""
