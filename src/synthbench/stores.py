"""Where the two stores that outlive a run live: the LLM answer journal and the MLflow tracking store.

A DVC queued experiment (``dvc exp run --queue`` then ``dvc queue start``, or ``dvc exp run --temp``) runs in a
throw-away copy of the repo under ``.dvc/tmp/exps/``. A relative journal path or a relative ``sqlite:///`` URI
would resolve inside that copy: every answer would be paid for again and every run, model version and alias
would vanish with the copy. So both resolve here, in one place, for the workspace and all its experiments:

- the journal: ``$SYNTHBENCH_JOURNAL`` if set, else ``generate.journal`` (relative to the project root);
- the tracking URI: ``$MLFLOW_TRACKING_URI`` if set, else ``tracking.uri``;

and a relative one inside an experiment copy is refused with one line that says what to set (elsewhere a relative
``sqlite:///`` URI is named absolutely, from the working directory). Absolute paths and server URLs
(``http://…``, ``postgresql://…``) pass through unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

from synthbench.errors import ConfigError

JOURNAL_ENV = "SYNTHBENCH_JOURNAL"
TRACKING_ENV = "MLFLOW_TRACKING_URI"
_SQLITE = "sqlite:///"
_EXP_COPIES = (".dvc", "tmp", "exps")  # where DVC's TempDirExecutor puts a queued experiment's copy


def experiment_copy(where: Path) -> bool:
    """True when ``where`` lies inside a DVC experiment copy (``…/.dvc/tmp/exps/…``)."""
    parts = where.resolve().parts
    size = len(_EXP_COPIES)
    return any(parts[i : i + size] == _EXP_COPIES for i in range(len(parts) - size + 1))


def journal_path(configured: str | Path, root: Path = Path(".")) -> Path:
    """The journal file: ``$SYNTHBENCH_JOURNAL`` or ``configured`` (relative to ``root``)."""
    override = os.environ.get(JOURNAL_ENV)
    path = Path(override) if override else Path(configured)
    if path.is_absolute():
        return path
    if experiment_copy(root):
        raise ConfigError(
            f"journal {path} is relative and this runs in a DVC experiment copy ({Path.cwd()}), where every "
            f"answer would be paid again and then lost; set {JOURNAL_ENV}={_in_workspace(path, 'journal.sqlite')} "
            "(or an absolute generate.journal)"
        )
    return root / path


def tracking_uri(configured: str) -> str:
    """The MLflow tracking URI: ``$MLFLOW_TRACKING_URI`` or ``configured``."""
    uri = os.environ.get(TRACKING_ENV) or configured
    relative_sqlite = uri.startswith(_SQLITE) and not uri[len(_SQLITE) :].startswith("/")
    if relative_sqlite and experiment_copy(Path.cwd()):
        raise ConfigError(
            f"tracking URI {uri} is relative and this runs in a DVC experiment copy ({Path.cwd()}), whose runs "
            f"and models would be lost with it; set {TRACKING_ENV}=sqlite:///"
            f"{_in_workspace(Path(uri[len(_SQLITE) :]), 'mlflow.db')} or a server URL (http://host:5000)"
        )
    if relative_sqlite:
        # The same file MLflow would open, named absolutely: MLflow caches one store per URI in a process, so a
        # relative URI would keep writing to the first folder's store after a chdir (a notebook, a test runner).
        return f"{_SQLITE}{Path.cwd() / uri[len(_SQLITE) :]}"
    return uri


def _in_workspace(relative: Path, name: str) -> str:
    """What to set: the file in the main workspace, which DVC names in ``DVC_ROOT`` for a queued experiment."""
    workspace = os.environ.get("DVC_ROOT")
    if workspace and not experiment_copy(Path(workspace)):
        return str(Path(workspace).resolve() / relative)
    return f"/abs/path/{name}"
