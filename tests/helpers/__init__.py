"""Helpers shared by test files in several folders (tests/ is on sys.path through conftest.py)."""
