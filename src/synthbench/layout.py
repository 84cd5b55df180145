"""Where every stage writes: the one module that knows the on-disk layout of the files stages hand each other.

``dvc.yaml`` declares the same paths as ``outs``/``deps``; ``tests/test_layout.py`` renders ``dvc.yaml`` with
DVC itself and asserts its paths equal these, so the YAML and the code cannot drift apart. Every path is
relative to the project root (the folder holding ``dvc.yaml``) unless a ``Layout`` is built on another root.

Layout (``<c>`` a condition, ``<b>`` a backbone)::

    data/real/<task>/{train,test}.jsonl, stats.json, task.json, labels.json   prepare
    data/synthetic/<task>/<mode>.{jsonl,summary.json,card.md} generate
    data/review/<task>/<mode>.jsonl                            review (a person's verdicts; git-tracked)
    exports/<task>/<mode>/                                     export (a datasets.DatasetDict + README.md card)
    models/<task>/<c>/<b>/training.json, seed_<s>/            train_*
    results/<task>/<c>/<b>/{metrics,confusion}.json, predictions.jsonl, confusion.png   evaluate
    reports/champions.json                                     champion
    reports/pilot/<task>.{json,md,html}                        pilot
    reports/…                                                  analyze
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REAL_SPLITS = ("train", "test")


@dataclass(frozen=True)
class Layout:
    """Paths of one project checkout; ``Layout()`` is the current directory's."""

    root: Path = Path(".")

    # --- prepare ---------------------------------------------------------------------------------------------
    def real_dir(self, task: str) -> Path:
        return self.root / "data" / "real" / task

    def real(self, task: str, split: str) -> Path:
        """``split`` is ``train`` or ``test``."""
        if split not in REAL_SPLITS:
            raise ValueError(f"split must be one of {REAL_SPLITS}, got {split!r}")
        return self.real_dir(task) / f"{split}.jsonl"

    def real_stats(self, task: str) -> Path:
        return self.real_dir(task) / "stats.json"

    def task_spec(self, task: str) -> Path:
        """The task spec snapshot prepare writes: what generate and analyze read (and declare) of the spec."""
        return self.real_dir(task) / "task.json"

    def labels(self, task: str) -> Path:
        """The task's label names in order (a JSON list): all that training reads of the spec, so a prompt
        edit does not retrain the real-data models."""
        return self.real_dir(task) / "labels.json"

    # --- generate --------------------------------------------------------------------------------------------
    def synthetic_dir(self, task: str) -> Path:
        return self.root / "data" / "synthetic" / task

    def synthetic(self, task: str, mode: str) -> Path:
        return self.synthetic_dir(task) / f"{mode}.jsonl"

    def synthetic_summary(self, task: str, mode: str) -> Path:
        return self.synthetic_dir(task) / f"{mode}.summary.json"

    def synthetic_card(self, task: str, mode: str) -> Path:
        return self.synthetic_dir(task) / f"{mode}.card.md"

    # --- review ----------------------------------------------------------------------------------------------
    def review(self, task: str, mode: str) -> Path:
        """A person's verdicts on synthetic rows, keyed by a content hash of the text (git-tracked: the ``review``
        stage's out with ``cache: false, persist: true``, which only creates it empty and validates it)."""
        return self.root / "data" / "review" / task / f"{mode}.jsonl"

    def export(self, task: str, mode: str) -> Path:
        """``synthbench export``'s default folder: a ``datasets.DatasetDict`` (``save_to_disk``) + ``README.md``."""
        return self.root / "exports" / task / mode

    # --- train -----------------------------------------------------------------------------------------------
    def model(self, task: str, condition: str, backbone: str) -> Path:
        return self.root / "models" / task / condition / backbone

    def training_manifest(self, task: str, condition: str, backbone: str) -> Path:
        return self.model(task, condition, backbone) / "training.json"

    def test_scores(self, task: str, condition: str, backbone: str) -> Path:
        """Every seed's class probabilities on the test texts, computed by the train stage while its models are
        loaded (the evaluate stage then needs no model in memory; it scores the models itself when these are
        missing or belong to other texts). Written after seed selection, which never sees them."""
        return self.model(task, condition, backbone) / "test_scores.npz"

    @staticmethod
    def seed_dir_name(seed: int) -> str:
        """The folder, inside a model directory, of one seed's fine-tuned model."""
        return f"seed_{seed}"

    # --- evaluate --------------------------------------------------------------------------------------------
    def results(self, task: str, condition: str, backbone: str) -> Path:
        return self.root / "results" / task / condition / backbone

    def metrics(self, task: str, condition: str, backbone: str) -> Path:
        return self.results(task, condition, backbone) / "metrics.json"

    def predictions(self, task: str, condition: str, backbone: str) -> Path:
        return self.results(task, condition, backbone) / "predictions.jsonl"

    def confusion(self, task: str, condition: str, backbone: str) -> Path:
        return self.results(task, condition, backbone) / "confusion.json"

    def confusion_png(self, task: str, condition: str, backbone: str) -> Path:
        return self.results(task, condition, backbone) / "confusion.png"

    # --- champion, pilot, analyze ----------------------------------------------------------------------------
    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def champions(self) -> Path:
        return self.reports / "champions.json"

    def pilot(self, task: str, suffix: str = "json") -> Path:
        """``reports/pilot/<task>.<suffix>`` (json, md, html)."""
        return self.reports / "pilot" / f"{task}.{suffix}"


LAYOUT = Layout()
