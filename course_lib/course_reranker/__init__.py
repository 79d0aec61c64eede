"""The course reranker itself — the instructor's side of the package.

Learners use the shipped model through :func:`course_lib.models.load_reranker`; nothing here
is needed to take the course.  This subpackage is how that model was made:

* :mod:`~course_lib.course_reranker.modeling` — the architecture (a BERT cross-encoder with a
  segment mean-pool cosine head), registered with transformers' Auto classes when a model loads;
* :mod:`~course_lib.course_reranker.recipe` — the training recipe (``course-lib train-reranker``);
* :mod:`~course_lib.course_reranker.selection` — calibration and the fusion-weight choice
  (``course-lib calibrate``, ``scripts/select_fusion_weight.py``);
* ``assets/`` — the shipped weights, tokenizer and model card (``assets/README.md``).
"""
