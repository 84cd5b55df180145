"""Moved to :mod:`synthbench.testing.openai_server` (importable by tests and benchmarks alike); this name stays
for tests written against the old location."""

from synthbench.testing.openai_server import *  # noqa: F403
from synthbench.testing.openai_server import ServerConfig, ServerHandle, serve  # noqa: F401
