"""Quality filters for generated texts: clean what can be cleaned (wrapping quotes, meta preambles, label
leakage), reject what cannot, and count every rejection by reason.

Near-duplicates: two texts are *similar* when the Jaccard similarity of their sets of word 3-grams (after
:func:`normalise_for_dedupe`) is high, i.e. they share most of their three-word phrases. That similarity is
estimated with MinHash signatures (datasketch) and looked up through an LSH index, so checking one text
costs about the same whether 10 or 50,000 texts were accepted before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from datasketch import MinHash, MinHashLSH

from synthbench.data.text import text_key
from synthbench.generation.structured import text_of_answer
from synthbench.tasks.textformat import TextFormat, format_problem

REJECT_EMPTY = "empty"
REJECT_TOO_SHORT = "too_short"
REJECT_TOO_LONG = "too_long"
REJECT_DUPLICATE = "duplicate"
REJECT_REFUSAL = "refusal_or_meta"
REJECT_COPIED = "copied_example"
REJECT_NEAR_DUPLICATE = "near_duplicate"
REJECT_STRUCTURED = "structured_or_label_echo"  # JSON/dict answers (they carry the label) or a bare label
REJECT_INVALID_TEXT = "invalid_text"  # lone surrogates or control characters: not writable as UTF-8 JSONL
REJECT_UNUSABLE = "unusable_answer"  # a 200 without a usable completion (journaled so it is not repaid)
REJECT_FORMAT = (
    "format_mismatch"  # lacks the task's declared text_format (markers missing, doubled, misordered)
)
REJECT_NOT_STRUCTURED = "not_structured_output"  # structured output asked for, answer not {"text": "..."}

# Fixed so that the same texts always get the same signatures, hence the same accept/reject decisions.
MINHASH_NUM_PERM = 128  # estimate's standard error ≈ sqrt(J(1 - J) / 128): ≈ 0.035 at J = 0.8
MINHASH_SEED = 1
SHINGLE_WORDS = 3
# LSH band layout weighted towards few false negatives (a missed near-duplicate is the costly error; a false
# candidate only costs one exact signature comparison): at J = threshold a pair is a candidate ≈ 87% of the
# time, at threshold + 0.05 ≈ 97% (128 permutations, threshold 0.8).
_LSH_WEIGHTS = (0.1, 0.9)

_PREAMBLE = re.compile(
    r"^\s*(?:sure|okay|ok|certainly|of course)?[!,.\s]*"
    r"(?:here(?:'s| is| are)\b[^:\n]{0,80}:|(?:title|headline|review|snippet|news item|text|output)\s*:)\s*",
    re.IGNORECASE,
)
_REFUSAL = re.compile(
    r"\b(?:as an ai|language model|i can(?:no|')t (?:help|assist|write|create|provide)|i'm sorry|i am sorry|"
    r"i apologi[sz]e|i'm unable|i am unable|cannot fulfill)\b",
    re.IGNORECASE,
)
_WRAPPING_QUOTES = re.compile(r'^\s*["“”\'‘’]+(.*?)["“”\'‘’]+\s*$', re.DOTALL)
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
# "label": "...", 'text': ..., {"category": — the shapes of a structured answer that names its class
_STRUCTURED_KEY = re.compile(r"""["'](?:label|class|category|sentiment|text|output)["']\s*:""", re.I)


def is_structured(text: str, label_names: Iterable[str] = (), markers: Iterable[str] = ()) -> bool:
    """Whether ``text`` is a structured answer rather than prose: JSON (an object or array), a dict-like
    ``"label": "…"`` pair, or nothing but a label name (a label echo). ``markers``: the task's text-format
    markers, which are prose here however bracketed (``[E1]Paris[/E1] … [E2]France[/E2]`` is not JSON)."""
    stripped = text.strip().strip("`").removeprefix("json").strip()
    if stripped[:1] and stripped[0] in "{[":
        try:
            json.loads(stripped)
            return True
        except ValueError:
            pass
    unmarked = stripped
    for marker in markers:
        unmarked = unmarked.replace(marker, " ")
    unmarked = unmarked.strip()
    if unmarked[:1] and unmarked[0] in "{[" and unmarked[-1:] in "}]":
        return True  # broken JSON still carries its label
    if _STRUCTURED_KEY.search(stripped):
        return True
    bare = normalise_for_dedupe(stripped)
    return any(bare == normalise_for_dedupe(name) for name in label_names)


def normalise_for_dedupe(text: str) -> str:
    """ "The same text" (:func:`synthbench.data.text.text_key`: spaces collapsed, case folded) once punctuation
    is dropped: two generated texts equal under this are duplicates."""
    return text_key(re.sub(r"[^\w\s]", " ", text))


def clean_text(text: str, label_names: Iterable[str] = ()) -> str:
    """Strip meta preambles ('Here is a review:'), wrapping quotes and trailing label tags ('(positive)')."""
    cleaned = text.strip()
    for _ in range(2):  # 'Sure! Here is a headline: Title: ...' has two layers
        cleaned = _PREAMBLE.sub("", cleaned, count=1).strip()
    match = _WRAPPING_QUOTES.match(cleaned)
    if match:
        cleaned = match.group(1).strip()
    for name in label_names:
        escaped = re.escape(name)
        cleaned = re.sub(
            rf"\s*[\(\[]\s*(?:label|sentiment|category)?\s*:?\s*{escaped}\s*[\)\]]\s*$",
            "",
            cleaned,
            flags=re.I,
        )
        cleaned = re.sub(
            rf"^\s*(?:label|sentiment|category)\s*:\s*{escaped}\b[\s:.-]*", "", cleaned, flags=re.I
        )
        cleaned = re.sub(
            rf"\s*(?:label|sentiment|category)\s*:\s*{escaped}\s*\.?\s*$", "", cleaned, flags=re.I
        )
    return _WHITESPACE.sub(" ", cleaned).strip()


def shingles(normalised: str) -> list[bytes]:
    """Word 3-grams of an already normalised text; a text under 3 words is its own single shingle."""
    words = normalised.split()
    if len(words) < SHINGLE_WORDS:
        return [normalised.encode("utf-8")]
    return [
        " ".join(words[i : i + SHINGLE_WORDS]).encode("utf-8") for i in range(len(words) - SHINGLE_WORDS + 1)
    ]


@dataclass
class QualityFilter:
    """Stateful across a dataset: remembers accepted texts to reject exact and near-duplicates.

    ``near_duplicate_threshold``: reject a text whose estimated Jaccard similarity of word 3-grams with an
    already accepted text (→ ``near_duplicate``) or with one of the real texts the call showed (few-shot
    examples, grounding texts: → ``copied_example``) is at least this. ``None`` keeps exact (normalised)
    duplicates only.

    ``text_format``: the task's declared structure; a text without it is rejected as ``format_mismatch``.
    ``structured_answers``: answers are ``{"text": "..."}`` (the endpoint was given a ``response_format``): each
    is read back to its text first, and one of any other shape is rejected as ``not_structured_output``.
    """

    min_words: int
    max_words: int | None
    label_names: list[str] = field(default_factory=list)
    near_duplicate_threshold: float | None = 0.8
    text_format: TextFormat | None = None
    structured_answers: bool = False
    _seen: set[str] = field(default_factory=set)
    _lsh: MinHashLSH | None = field(default=None, init=False, repr=False)
    _signatures: list[MinHash] = field(default_factory=list, init=False, repr=False)  # LSH key = position
    _example_signatures: dict[str, MinHash] = field(default_factory=dict, init=False, repr=False)
    _empty: MinHash | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        threshold = self.near_duplicate_threshold
        if threshold is None:
            return
        if not 0 < threshold <= 1:
            raise ValueError(f"near_duplicate_threshold must be in (0, 1], got {threshold}")
        # One empty signature whose permutations every later one copies: building a MinHash from scratch
        # regenerates num_perm random permutations, which would dominate the per-text cost.
        self._empty = MinHash(num_perm=MINHASH_NUM_PERM, seed=MINHASH_SEED)
        self._lsh = MinHashLSH(threshold=threshold, num_perm=MINHASH_NUM_PERM, weights=_LSH_WEIGHTS)

    @property
    def _markers(self) -> list[str]:
        pairs = self.text_format.markers if self.text_format is not None else []
        return [marker for pair in pairs for marker in (pair.open, pair.close)]

    def signature(self, normalised: str) -> MinHash:
        """MinHash of a normalised text's word 3-grams (same seed and permutations for every text)."""
        if self._empty is None:
            raise RuntimeError("near-duplicate detection is off (near_duplicate_threshold is None)")
        minhash = self._empty.copy()
        minhash.update_batch(shingles(normalised))
        return minhash

    def _example_signature(self, normalised: str) -> MinHash:
        # The same real examples recur across many calls: sign each once (bounded by the real pool's size).
        cached = self._example_signatures.get(normalised)
        if cached is None:
            cached = self._example_signatures[normalised] = self.signature(normalised)
        return cached

    def precheck(self, raw_text: str, *, finish_reason: str | None = None) -> tuple[str | None, str | None]:
        """The checks of one answer on its own (no memory of other texts): (cleaned text, None), or (None,
        reason) for an unusable, not structured (when asked), invalid, structured, empty, refusal, format
        mismatch, too short or too long answer. Pure: the progress line runs it on each answer as it arrives."""
        if finish_reason is not None and finish_reason.startswith("unusable:"):
            return None, REJECT_UNUSABLE
        if self.structured_answers:
            unwrapped = text_of_answer(raw_text)
            if unwrapped is None:
                return None, REJECT_NOT_STRUCTURED
            raw_text = unwrapped
        if _CONTROL.search(raw_text):
            return None, REJECT_INVALID_TEXT
        if is_structured(raw_text, self.label_names, self._markers):
            return None, REJECT_STRUCTURED
        text = clean_text(raw_text, self.label_names)
        if not text:
            return None, REJECT_EMPTY
        if _REFUSAL.search(text):
            return None, REJECT_REFUSAL
        if self.text_format is not None and format_problem(text, self.text_format) is not None:
            return None, REJECT_FORMAT
        n_words = len(text.split())
        if n_words < self.min_words:
            return None, REJECT_TOO_SHORT
        if self.max_words is not None and n_words > self.max_words:
            return None, REJECT_TOO_LONG
        return text, None

    def check(
        self, raw_text: str, *, examples: Iterable[str] = (), finish_reason: str | None = None
    ) -> tuple[str | None, str | None]:
        """Return (cleaned text, None) if accepted, else (None, rejection reason).

        Exact checks come first, so a text equal to an accepted one (after normalisation) is a ``duplicate``
        and one equal to an example is ``copied_example``; only then are near-duplicates looked for.
        """
        text, reason = self.precheck(raw_text, finish_reason=finish_reason)
        if text is None:
            return None, reason
        key = normalise_for_dedupe(text)
        example_keys = [normalise_for_dedupe(example) for example in examples]
        if key in example_keys:
            return None, REJECT_COPIED
        if key in self._seen:
            return None, REJECT_DUPLICATE
        if self._lsh is not None and self.near_duplicate_threshold is not None:
            threshold = self.near_duplicate_threshold
            minhash = self.signature(key)
            if any(minhash.jaccard(self._example_signature(e)) >= threshold for e in example_keys):
                return None, REJECT_COPIED
            # LSH returns candidates only; the signature comparison is what applies the threshold.
            for candidate in self._lsh.query(minhash):
                if minhash.jaccard(self._signatures[candidate]) >= threshold:
                    return None, REJECT_NEAR_DUPLICATE
            # Only accepted texts enter the index: a rejected text must not block later ones.
            self._lsh.insert(len(self._signatures), minhash)
            self._signatures.append(minhash)
        self._seen.add(key)
        return text, None
