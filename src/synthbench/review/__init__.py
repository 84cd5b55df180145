"""People in the loop: review synthetic rows in the browser, feed the verdicts back, publish the result.

- ``store``: the decision file (``data/review/<task>/<mode>.jsonl``), keyed by a content hash of the text, and
  how verdicts act on training rows (``apply_review``: training's one call into this package);
- ``sample``: the seeded, label-stratified sample a person reviews, and what each row shows;
- ``session`` / ``server`` / ``page.html``: ``synthbench review`` (stdlib HTTP on 127.0.0.1, one offline page);
- ``stats``: reject rates per label and reason, label noise with a Wilson interval; ``report``: the analysis
  report's review section;
- ``export``: ``synthbench export`` (a ``datasets.DatasetDict`` with a card, optionally pushed to the hub).

Nothing is imported here, so ``synthbench --help`` and training stay fast.
"""
