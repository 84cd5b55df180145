"""Stage 2 — generate: LLM requests (strategies, journaled client, embedded server, filters) → synthetic rows."""
