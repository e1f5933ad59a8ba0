"""Benchmarks: each runs a reference beside our code in the same run (DESIGN §7).

A package so that benchmarks can share ``bench._common`` and mypy sees one module name for it.
"""
