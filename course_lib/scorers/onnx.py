"""The course reranker in ONNX Runtime: :class:`OnnxScorer`, a :class:`~course_lib.scorers.base.Scorer` over the
exported (and quantised) graph; the build step is :mod:`course_lib.scorers.onnx_export`.

* :func:`export_onnx` — writes the reranker as ``model.onnx`` (inputs ``input_ids``,
  ``attention_mask``, ``token_type_ids``, int64, dynamic batch and sequence axes; output
  ``logits`` of shape ``(batch,)``) with the TorchScript exporter, then checks ONNX Runtime
  against torch on a few pairs and refuses a graph that disagrees.
* :func:`quantize` — dynamic int8 (weights int8 ahead of time, activations quantised per
  batch at run time) of the exported graph: ``"int8"`` quantises every weight MatMul/Gemm,
  ``"selective"`` keeps in fp32 the projections the cosine head is most sensitive to
  (:data:`SELECTIVE_KEEP_FP32`, chosen on tuning claims; see below).
* :class:`OnnxScorer` — a Scorer that tokenises exactly as :class:`~course_lib.rerank.CrossEncoderScorer`
  does and runs the exported (and quantised) graph.  The files are built once per model
  weights and kept under :func:`course_lib.caches.cache_dir` (``onnx/<weights>/``).

Why *selective*?  The head scores ``scale * cos(mean query states, mean document states)``
with a scale near 20, so a small rotation of the final states moves the logit a lot.  Plain
dynamic int8 (one scale per weight tensor) moves logits by up to ~2.9 on tuning pairs.  Nearly
all of that comes from the FFN down projections (``output.dense``, 1536 -> 384, fed by GELU
outputs with a long tail), above all the first layer's: int8 in that one projection alone
moves logits by ~0.6 on average, in the last layer's by ~0.04.  Keeping the whole last layer or
the attention projections in fp32 barely helps.
``"selective"`` keeps the first layer's FFN down projection in fp32 (1 of 36 weight MatMuls) and
quantises the rest with per-channel scales: max |logit change| ~0.76 instead of ~2.9, mean ~0.17
instead of ~0.92, at about the size of full int8 and nearly its speed (``course-lib bench`` on 50 SciFact test claims,
stage 6 of the course reranker: int8 1.51x at NDCG@10 0.692, selective 1.45x at 0.727, the naive loop 0.728; notebook
05).  :data:`SELECTIVE_KEEP_FP32` was picked by ``python -m course_lib.instructor tune-onnx`` (:func:`tune_selective`) on
30 SciFact *train* claims (the recipe's ``dev_query_ids``), never on the test split, with stage 5 (the logit figures
above are stage 5's).

Example
-------
>>> from course_lib.scorers import OnnxScorer              # doctest: +SKIP
>>> fast = OnnxScorer(precision="selective")              # doctest: +SKIP
>>> logits = fast.score("Where is the Eiffel Tower?",
...                     ["The Eiffel Tower is in Paris.", "Photosynthesis needs light."])  # doctest: +SKIP
>>> bool(logits[0] > logits[1])                           # doctest: +SKIP
True

Needs ``onnx`` (export and quantisation) and ``onnxruntime`` (scoring):
``pip install onnx onnxruntime``.
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np

from course_lib.scorers.base import Scorer, ScoringStats
from course_lib.scorers.cross_encoder import CrossEncoderScorer, weights_fingerprint
from course_lib.scorers.onnx_export import (
    FORMAT_VERSION,
    SELECTIVE_KEEP_FP32,
    SELECTIVE_PER_CHANNEL,
    _default_dir,
    _require,
    _session,
    export_onnx,
    quantize,
)

__all__ = ["OnnxScorer", "ensure_model", "PRECISIONS"]

#: Precisions :class:`OnnxScorer` offers.
PRECISIONS = ("fp32", "int8", "selective")


# -- the scorer --------------------------------------------------------------------------------------
def _recipe(precision: str) -> str:
    if precision == "selective":
        return "selective:" + ",".join(SELECTIVE_KEEP_FP32) + (":per-channel" if SELECTIVE_PER_CHANNEL else "")
    return precision


#: How many files this process exported or quantised (tests read it to see the cache work).
BUILDS = {"export": 0, "quantize": 0}


def ensure_model(base: CrossEncoderScorer, precision: str = "fp32", cache_dir=None) -> Path:
    """The ONNX file of ``base``'s weights at ``precision``, exported/quantised only if missing.

    Files live in ``cache_dir`` (default ``caches.cache_dir()/onnx``) under a folder named by the
    weights' fingerprint; the settings of ``base`` (max length, ...) only affect tokenisation,
    so every scorer over the same weights shares them.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    weights = weights_fingerprint(base._transformer())
    folder = _default_dir(weights) if cache_dir is None else Path(cache_dir) / f"{weights}-v{FORMAT_VERSION}"
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        export_onnx(base, folder)
        BUILDS["export"] += 1
    if precision == "fp32":
        return fp32
    name = "model.int8.onnx" if precision == "int8" else \
        "model.selective-" + hashlib.sha1(_recipe(precision).encode()).hexdigest()[:8] + ".onnx"
    target = folder / name
    if not target.is_file():
        quantize(fp32, target, precision)
        BUILDS["quantize"] += 1
    return target


class OnnxScorer(Scorer):
    """A :class:`~course_lib.rerank.Scorer` running the course reranker in ONNX Runtime (CPU).

    Args:
        base: the :class:`~course_lib.rerank.CrossEncoderScorer` to mirror (None = the course
            reranker).  Its weights are exported; its settings (``max_length``,
            ``max_query_tokens``, ``batch_size``, ``long_documents``, ``calibration``) apply.
        precision: ``"fp32"`` (the same logits to ~1e-5), ``"int8"`` (dynamic int8 everywhere)
            or ``"selective"`` (int8 except :data:`SELECTIVE_KEEP_FP32`).
        cache_dir: where the ONNX files are kept (default ``caches.cache_dir()/onnx``); built on
            first use, reused afterwards (``built`` says whether this construction built any).
        threads: ONNX Runtime intra-op threads (None = its default, all cores).

    Tokenisation is the base's: queries capped to ``max_query_tokens`` word pieces, pairs cut to
    ``max_length`` with ``longest_first`` truncation (what ``CrossEncoder.predict`` does; with a
    capped query it only ever shortens the passage unless the query takes over half of
    ``max_length``).  Pairs are batched ``batch_size`` at a time in length order (little padding)
    and the logits returned in the caller's order.

    >>> onnx_scorer = OnnxScorer(precision="fp32", threads=1)    # doctest: +SKIP
    >>> onnx_scorer.score("red apple", ["a red apple", "a pear"]).shape    # doctest: +SKIP
    (2,)
    """

    def __init__(self, base: CrossEncoderScorer | None = None, precision: str = "fp32", cache_dir=None,
                 threads: int | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        _require("onnxruntime")
        if base is None:
            base = CrossEncoderScorer()
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError(f"base must be a CrossEncoderScorer, got {type(base).__name__}")
        self.precision = precision
        self.threads = threads
        exports, quants = BUILDS["export"], BUILDS["quantize"]
        self.model_path = ensure_model(base, precision, cache_dir)
        self.built = (BUILDS["export"], BUILDS["quantize"]) != (exports, quants)
        self.session = _session(self.model_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._use(base)

    @classmethod
    def from_file(cls, path, base: CrossEncoderScorer | None = None, threads: int | None = None,
                  precision: str = "custom") -> "OnnxScorer":
        """A scorer over an ONNX file you built yourself (:func:`export_onnx`, :func:`quantize`).

        ``precision`` only names the file in :meth:`fingerprint`; the file must come from
        ``base``'s weights (nothing checks that).
        """
        self = cls.__new__(cls)
        self.precision, self.threads, self.built = precision, threads, False
        self.model_path = Path(path)
        self.session = _session(self.model_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._use(base if base is not None else CrossEncoderScorer())
        return self

    def _use(self, base: CrossEncoderScorer) -> None:
        self.base = base
        self.tokenizer = base.tokenizer
        self.max_length = base.max_length
        self.max_query_tokens = base.max_query_tokens
        self.batch_size = base.batch_size
        self.long_documents = base.long_documents
        self.calibration = base.calibration
        self.last_stats = ScoringStats()
        self._fingerprint = None

    def configured(self, **settings) -> "OnnxScorer":
        """This scorer with other :class:`~course_lib.rerank.CrossEncoderScorer` settings
        (same ONNX session; ``autocast`` is accepted and has no effect here)."""
        other = copy.copy(self)
        other._use(self.base.configured(**settings))
        return other

    def fingerprint(self) -> str:
        """The base's fingerprint (weights and settings) plus the precision and its recipe."""
        if self._fingerprint is None:
            recipe = _recipe(self.precision) if self.precision in PRECISIONS else \
                "file:" + hashlib.sha1(self.model_path.read_bytes()).hexdigest()  # from_file: the file itself
            parts = ["onnx", FORMAT_VERSION, recipe, self.base.fingerprint()]
            self._fingerprint = hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:16]
        return self._fingerprint

    def _run(self, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Logits of already-capped pairs, and how many pairs were cut to ``max_length``.

        Each pair is tokenised once (the base scorer's :class:`~course_lib.scorers.pair_encoding.PairEncoder`:
        the tokenizer's own ``longest_first`` ids), then batched longest first by tokens."""
        encoder = self.base._encoder()
        if encoder is None:
            raise TypeError("OnnxScorer needs a model with a fast tokenizer")
        rows, truncated = encoder.encode(pairs)
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(pairs))
        order = np.argsort(-lengths, kind="stable")
        out = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), self.batch_size):
            idx = order[start:start + self.batch_size]
            features = encoder.features([rows[i] for i in idx])
            feed = {n: features[n] for n in self.input_names}
            out[idx] = self.session.run(["logits"], feed)[0].reshape(-1)
        return out, sum(truncated)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits of (query, text) pairs, in input order."""
        if not len(pairs):
            self.last_stats = ScoringStats(pairs=0)
            return np.zeros(0, dtype=np.float32)
        flat, owner, stats = self.base.expand_pairs(pairs, self.max_query_tokens, self.long_documents)
        flat_logits, n_cut = self._run(flat)
        if self.long_documents == "truncate":
            stats.truncated = n_cut
        self.last_stats = stats
        out = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), flat_logits)
        return out
