"""synthbench: can LLM-generated data replace labelled data for a text classifier?

The package reads as the pipeline reads: ``prepare`` → ``generation`` → ``training`` → ``evaluation`` →
``analysis``; shared pieces (``config``, ``tasks``, ``data``, ``tracking``, ``errors``) sit beside them.
"""

__version__ = "0.1.0"
