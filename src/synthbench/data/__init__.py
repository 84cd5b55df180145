"""Shared data pieces: atomic file I/O, real-data sources (hub, local files, wheels), splitting."""
