"""Test doubles that are real servers (importable by tests and benchmarks alike)."""
