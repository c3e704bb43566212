"""Helpers shared by the test suite (importable as `support` thanks to tests/conftest.py)."""
