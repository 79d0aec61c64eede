"""Latency optimisation: cheap pre-filters, shorter inputs, reduced precision, a score cache.

``OptimizedReranker`` keeps the course's API (``optimized_rerank``, three levels) and fixes
its sample code: the Jaccard pre-filter no longer divides by zero on empty text, it never
filters the list down to nothing (it keeps at least ``min_keep`` candidates), scores are not
written into the caller's dicts, and the number of results is a parameter.

Levels (measure them on your data: ``scripts/bench_rerank.py`` prints throughput):

* ``"accuracy"`` — every candidate, the model's full max length;
* ``"balanced"`` — every candidate, pairs cut to 128 tokens;
* ``"speed"``   — Jaccard pre-filter, 128 tokens, and bf16 autocast on CPUs that support it.

Example
-------
>>> from course_lib.optimize import jaccard
>>> jaccard("", "")
0.0
>>> round(jaccard("the cat sat", "the cat ran"), 2)
0.5
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections import OrderedDict

import numpy as np

from course_lib.rerank import AdvancedReranker, CrossEncoderScorer

_WORD = re.compile(r"\w+")


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity; 0.0 when both texts are empty (no division by zero)."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def pre_filter(query: str, candidates: list[dict], min_similarity: float = 0.05, min_keep: int = 10) -> list[dict]:
    """Candidates with Jaccard >= ``min_similarity``, topped up to ``min_keep`` by Jaccard order.

    Returns the same dict objects (no copies, no changes), in their original order.
    """
    sims = [jaccard(query, c["text"]) for c in candidates]
    keep = {i for i, s in enumerate(sims) if s >= min_similarity}
    if len(keep) < min_keep:
        for i in sorted(range(len(candidates)), key=lambda i: (-sims[i], i)):
            if len(keep) >= min_keep:
                break
            keep.add(i)
    return [c for i, c in enumerate(candidates) if i in keep]


class LRUScoreCache:
    """LRU cache of logits keyed by (model id, query, candidate text) — not by the query alone.

    The course's sample service cached results per query, so a second request with different
    candidates got the first request's answer. Keying on the pair makes every hit correct.
    """

    def __init__(self, maxsize: int = 10_000, model_id: str = ""):
        self.maxsize = maxsize
        self.model_id = model_id
        self._data: OrderedDict[str, float] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def key(self, query: str, text: str) -> str:
        return hashlib.sha1(f"{self.model_id}\0{query}\0{text}".encode("utf-8")).hexdigest()

    def get(self, query: str, text: str):
        k = self.key(query, text)
        if k in self._data:
            self._data.move_to_end(k)
            self.hits += 1
            return self._data[k]
        self.misses += 1
        return None

    def put(self, query: str, text: str, logit: float) -> None:
        k = self.key(query, text)
        self._data[k] = float(logit)
        self._data.move_to_end(k)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class CachedScorer:
    """Wrap a :class:`~course_lib.rerank.Reranker` with an :class:`LRUScoreCache`; only misses are scored."""

    def __init__(self, scorer, cache: LRUScoreCache | None = None):
        self.scorer = scorer
        self.cache = cache if cache is not None else LRUScoreCache()

    def score_pairs(self, pairs):
        out = np.empty(len(pairs), dtype=np.float32)
        todo = []
        for i, (q, t) in enumerate(pairs):
            v = self.cache.get(q, t)
            if v is None:
                todo.append(i)
            else:
                out[i] = v
        if todo:
            fresh = self.scorer.score_pairs([pairs[i] for i in todo])
            for i, v in zip(todo, fresh):
                out[i] = v
                self.cache.put(pairs[i][0], pairs[i][1], float(v))
        return out

    def score(self, query, texts):
        return self.score_pairs([(query, t) for t in texts])

    def probabilities(self, logits):
        return self.scorer.probabilities(logits)


class _Bf16Scorer(CrossEncoderScorer):
    def score_pairs(self, pairs):
        import torch

        ok = torch.backends.mkldnn.is_available() and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if ok and str(self.model.device) == "cpu" else contextlib.nullcontext()
        with ctx:
            return super().score_pairs(pairs)


class OptimizedReranker:
    """The course's ``OptimizedReranker``: one model, three latency/quality levels.

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        optimization_level: ``"speed"``, ``"balanced"`` or ``"accuracy"``.
    """

    LEVELS = ("speed", "balanced", "accuracy")

    def __init__(self, model_name=None, optimization_level: str = "balanced", short_length: int = 128):
        from course_lib.models import load_reranker

        if optimization_level not in self.LEVELS:
            raise ValueError(f"optimization_level must be one of {self.LEVELS}")
        self.optimization_level = optimization_level
        full = load_reranker(model_name)
        short = load_reranker(model_name, max_length=short_length)
        self._rerankers = {
            "accuracy": AdvancedReranker(scorer=CrossEncoderScorer(full)),
            "balanced": AdvancedReranker(scorer=CrossEncoderScorer(short)),
            "speed": AdvancedReranker(scorer=_Bf16Scorer(short)),
        }

    def optimized_rerank(self, query: str, candidates: list[dict], top_k: int = 10, score_threshold: float = 0.0) -> list[dict]:
        """Rerank at the configured level; returns new dicts like :class:`AdvancedReranker`.

        ``original_position`` always refers to the caller's list, even after pre-filtering.
        """
        pool = candidates
        if self.optimization_level == "speed":
            kept = pre_filter(query, candidates)
            index = {id(c): i for i, c in enumerate(candidates)}
            pool = kept
        out = self._rerankers[self.optimization_level].rerank_with_confidence(query, pool, top_k=top_k, score_threshold=score_threshold)
        if pool is not candidates:
            for r in out:
                r["original_position"] = index[id(pool[r["original_position"]])]
        return out
