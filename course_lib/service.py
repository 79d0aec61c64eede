"""Deployment: a reranking service that batches requests and caches pair scores.

``ScalableRerankingService.process_batch_requests`` follows the course's design (group by
query, check a cache, score unique candidates once, distribute results) and fixes its bugs:

* the cache is keyed by (query, candidate text), not by the query alone — a second request for
  the same query with *different* candidates gets its own correct answer;
* each request gets results only for *its own* candidates (matched by id), in score order;
* scoring runs in a worker thread so the event loop keeps serving; concurrent batches share
  one model behind a lock;
* requests are validated, and a bad request gets an error entry instead of failing the batch.

Example
-------
>>> import asyncio
>>> from course_lib.service import ScalableRerankingService
>>> svc = ScalableRerankingService()
>>> reqs = [{"id": "r1", "query": "capital of France", "top_k": 1,
...          "candidates": [{"id": "a", "text": "Paris is the capital of France."},
...                         {"id": "b", "text": "Bananas are yellow."}]}]
>>> asyncio.run(svc.process_batch_requests(reqs))[0]["results"][0]["id"]
'a'
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict

from course_lib.caches import CachedScorer, LRUScoreCache
from course_lib.rerank import CrossEncoderScorer, Scorer, rank_results, validate_candidates, validate_rank_args


class ScalableRerankingService:
    """Batch reranking with a pair-level LRU cache.

    Args:
        model_path: None (the course reranker) or any name/path ``load_reranker`` accepts.
        max_batch_size: pairs per forward pass.
        cache_size: pair scores kept in the LRU cache.
        scorer: an existing scorer to use instead of loading ``model_path``.
    """

    def __init__(self, model_path=None, max_batch_size: int = 64, cache_size: int = 10_000, scorer: Scorer | None = None):
        if scorer is not None and not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a course_lib.rerank.Scorer, got {type(scorer).__name__}")
        base = scorer if scorer is not None else CrossEncoderScorer(model_path, batch_size=max_batch_size)
        # keyed by the scorer's fingerprint (its weights in memory), the query and the passage
        self.scorer = CachedScorer(base, LRUScoreCache(cache_size))
        self.max_batch_size = max_batch_size
        self._lock = threading.Lock()
        self.stats = {"requests": 0, "pairs_requested": 0, "pairs_scored": 0, "batches": 0, "seconds": 0.0}

    @property
    def cache(self) -> LRUScoreCache:
        return self.scorer.cache

    @staticmethod
    def _validate(req) -> str | None:
        if not isinstance(req, dict):
            return "request must be an object"
        for key in ("id", "query", "candidates"):
            if key not in req:
                return f"request is missing '{key}'"
        if not isinstance(req["query"], str) or not req["query"].strip():
            return "query must be a non-empty string"
        try:
            validate_candidates(req["candidates"])
        except (TypeError, ValueError) as exc:
            return str(exc)
        if any("id" not in c for c in req["candidates"]):
            return "every candidate needs an 'id'"
        try:
            validate_rank_args(req.get("top_k", 10), 0.0)
        except (TypeError, ValueError) as exc:
            return str(exc)
        return None

    def _score_groups(self, groups: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
        """Score each query's unique candidate texts once (cache first); returns query -> text -> logit."""
        pairs = []
        for query, texts in groups.items():
            pairs.extend((query, t) for t in texts)
        before = self.cache.misses
        with self._lock:
            logits = self.scorer.score_pairs(pairs) if pairs else []
        self.stats["pairs_scored"] += self.cache.misses - before
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (q, t), z in zip(pairs, logits):
            out[q][t] = float(z)
        return out

    async def process_batch_requests(self, requests: list[dict]) -> list[dict]:
        """Rerank a batch of ``{"id", "query", "candidates", "top_k"?}`` requests.

        Returns one ``{"request_id", "results"}`` (or ``{"request_id", "error"}``) per request, in
        request order; results have :func:`~course_lib.rerank.rank_results`' shape.  A request
        with bad fields (a ``top_k`` of the wrong type or range included) gets its own error;
        the others are still answered.
        """
        t0 = time.perf_counter()
        errors, valid = {}, []
        for i, req in enumerate(requests):
            msg = self._validate(req)
            if msg:
                errors[i] = msg
            else:
                valid.append((i, req))
        groups: dict[str, list[str]] = defaultdict(list)
        for _, req in valid:
            seen = set(groups[req["query"]])
            for c in req["candidates"]:
                if c["text"] not in seen:
                    groups[req["query"]].append(c["text"])
                    seen.add(c["text"])
        scores = await asyncio.to_thread(self._score_groups, dict(groups))
        out = []
        for i, req in enumerate(requests):
            rid = req.get("id") if isinstance(req, dict) else None
            if i in errors:
                out.append({"request_id": rid, "error": errors[i]})
                continue
            logits = [scores[req["query"]][c["text"]] for c in req["candidates"]]
            ranked = rank_results(req["candidates"], logits, self.scorer.probabilities(logits), top_k=req.get("top_k", 10))
            out.append({"request_id": rid, "results": ranked})
        self.stats["requests"] += len(requests)
        self.stats["pairs_requested"] += sum(len(r["candidates"]) for _, r in valid)
        self.stats["batches"] += 1
        self.stats["seconds"] += time.perf_counter() - t0
        return out
