"""Training sets from a run's accepted rows: one pure builder per method, a split by seed, a mix.

The builders are functions over groups of rows (engine/builders/groups.py): the rows of one seed
(CrossIn candidates, QAlign, TransLLM, X-Instruction) or of one language (sPhinX N-shot). What
spans groups, the split, CrossIn's size caps and the mix, is decided by hash-rank cuts
(engine/builders/ranks.py). actors/dataflow/build_pipeline.py runs them on Ray Data; builders never load
models: knn retrieval takes an `embed` callable from the caller.
"""

from __future__ import annotations

SPLITS = ("train", "validation")
MIX = "mix"
