"""Analyze stage: the paper's analyses and the report a practitioner reads.

Pure computations: ``summary`` (Table 1), ``subjectivity`` (Bradley–Terry, agreement, threshold curves),
``diversity`` (Remote-Clique, Chamfer, closeness), ``verdict`` (plain-language verdict).
Wiring (files in, tables out): ``tasklevel``, ``instance``, ``embeddings`` (cached embeddings), ``curves``.
Output: ``figures`` (PNG), ``report`` (Markdown / self-contained HTML), ``sections`` (what the report says),
``stage`` (``run_analyze``, the DVC stage entry point), ``settings`` (params ``analysis``).

Nothing is imported here, so ``synthbench --help`` stays fast.
"""
