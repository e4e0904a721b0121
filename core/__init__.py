"""The foundations every layer builds on: configuration, values, the store, time, errors.

Imports run one way: core <- sources, digests <- daemon (tests/test_layers.py keeps it so).
"""
