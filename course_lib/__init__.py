"""course_lib: the companion library of the course on two-step retrieval with cross-encoder reranking.

Importing it is cheap (no torch, no transformers): models load when a function asks for one.
The module map (notebook -> modules -> tests) is in ``course_lib/README.md``.
"""

__version__ = "0.1.0"
