"""course_lib: the companion library of the course on two-step retrieval with cross-encoder reranking."""
from course_lib.modeling import register as _register

_register()
__version__ = "0.1.0"
