"""The instructor's tools: how the shipped course reranker, its speed tier and the course's records were
made.  Learners need nothing here; no learner module imports it.

* :mod:`~course_lib.instructor.recipe` — the training recipe;
* :mod:`~course_lib.instructor.selection` — calibration and the fusion-weight choice;
* :mod:`~course_lib.instructor.distill` — the distilled speed tier;
* :mod:`~course_lib.instructor.tuning` — choosing the ONNX scorer's selective int8 recipe;
* ``python -m course_lib.instructor`` (:mod:`~course_lib.instructor.__main__`) — the one entry point.

The runtime model (what loading the shipped model needs) is :mod:`course_lib.course_reranker.modeling`.
"""
