"""Benchmarks of ambiseg-metrics against research-style numpy code, peer libraries and the memory bound.

Run everything with ``python -m benchmarks`` (``--help`` for options); results are printed and written
to ``benchmarks/RESULTS.md``. Nothing here is imported by the library or its tests except the smoke test.
"""
