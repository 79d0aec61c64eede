"""Every setting the course reads from the environment, and where its assets live: one place.

=========================  ==========================================================================
variable                   meaning
=========================  ==========================================================================
``COURSE_DATA_DIR``        folder of BEIR-layout datasets (SciFact, Cranfield, MedQuAD, ObliQA)
``COURSE_CACHE_DIR``       writable cache (default ``~/.cache/course_lib``): embeddings, scores, ONNX files
``COURSE_SEED_CACHE``      one more read-only cache folder, searched after the checkout's ``eval_cache/``
``COURSE_RERANKER``        the cross-encoder ``load_reranker()`` loads (default: the shipped course reranker)
``COURSE_EMBEDDER``        the bi-encoder ``load_embedder()`` loads (default: the bundled all-MiniLM-L6-v2)
``COURSE_SMALL_RERANKER``  the distilled speed tier (default: ``course_reranker/assets_small/``)
``COURSE_API_KEY``         the key the HTTP service requires (mandatory off loopback) and clients send
=========================  ==========================================================================

Every reader goes through a function here, read at call time (a notebook may set a variable after
import).  The offline policy (``HF_HUB_OFFLINE`` and friends) is :mod:`course_lib.env`'s.

>>> import os; saved = os.environ.get("COURSE_DATA_DIR")
>>> os.environ["COURSE_DATA_DIR"] = "/tmp/data"
>>> str(data_dir())
'/tmp/data'
>>> os.environ["COURSE_DATA_DIR"] = ""; data_dir() is None
True
>>> os.environ["COURSE_DATA_DIR"] = saved or ""
"""

from __future__ import annotations

import os
from pathlib import Path

#: The installed package (``course_lib/``); assets live beside its modules.
PACKAGE_DIR = Path(__file__).resolve().parent
#: The checkout's root when the package runs from one (``eval_cache/``, ``runs/``, ``scripts/``).
CHECKOUT_DIR = PACKAGE_DIR.parent

DATA_DIR = "COURSE_DATA_DIR"
CACHE_DIR = "COURSE_CACHE_DIR"
SEED_CACHE = "COURSE_SEED_CACHE"
RERANKER = "COURSE_RERANKER"
EMBEDDER = "COURSE_EMBEDDER"
SMALL_RERANKER = "COURSE_SMALL_RERANKER"
API_KEY = "COURSE_API_KEY"
#: Every variable above, with its one-line meaning (``course-lib check`` and the README list them).
VARIABLES = {
    DATA_DIR: "folder of BEIR-layout datasets",
    CACHE_DIR: "writable cache (default ~/.cache/course_lib)",
    SEED_CACHE: "one more read-only cache folder",
    RERANKER: "the cross-encoder load_reranker() loads",
    EMBEDDER: "the bi-encoder load_embedder() loads",
    SMALL_RERANKER: "the distilled speed tier",
    API_KEY: "the key the HTTP service requires off loopback",
}


def get(name: str) -> str | None:
    """The variable's value, or None when unset or empty; only the course's own variables.

    >>> get("PATH")
    Traceback (most recent call last):
    ...
    KeyError: 'PATH is not a course setting (course_lib.settings.VARIABLES)'
    """
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a course setting (course_lib.settings.VARIABLES)")
    return os.environ.get(name) or None


def data_dir() -> Path | None:
    """``$COURSE_DATA_DIR`` as a path, or None when unset."""
    value = get(DATA_DIR)
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``$COURSE_CACHE_DIR`` or ``~/.cache/course_lib`` (created on demand)."""
    p = Path(get(CACHE_DIR) or Path.home() / ".cache" / "course_lib")
    p.mkdir(parents=True, exist_ok=True)
    return p


def seed_cache() -> Path | None:
    """``$COURSE_SEED_CACHE`` as a path, or None."""
    value = get(SEED_CACHE)
    return Path(value) if value else None


def small_reranker() -> str | None:
    """``$COURSE_SMALL_RERANKER``, or None."""
    return get(SMALL_RERANKER)


def api_key() -> str | None:
    """``$COURSE_API_KEY``, or None."""
    return get(API_KEY)
