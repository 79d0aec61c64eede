"""The course reranker at run time: what loading and running the shipped model needs.

Learners use it through :func:`course_lib.models.load_reranker`; this subpackage holds

* :mod:`~course_lib.course_reranker.modeling` — the architecture (a BERT cross-encoder with a
  segment mean-pool cosine head), registered with transformers' Auto classes when a model loads,
  and the shared-matrix fingerprint the distilled tier is checked against;
* ``assets/`` — the shipped weights, tokenizer and model card (``assets/README.md``);
* ``assets_small/`` — the distilled speed tier (2 of 6 layers).

How these models were made (recipe, calibration, distillation) is the instructor's:
:mod:`course_lib.instructor` (``python -m course_lib.instructor --help``).
"""
