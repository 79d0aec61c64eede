"""Stage 2: scoring (query, candidate) pairs with a cross-encoder, and the course's rerankers.

* :class:`Reranker` — the one protocol every later module takes: ``score(query, texts)``
  returns raw logits (higher = more relevant), ``probabilities(logits)`` maps them to [0, 1].
* :class:`CrossEncoderScorer` — the protocol over a sentence-transformers ``CrossEncoder``:
  length-sorted batches, over-long queries capped, truncation counted, optional max-passage
  scoring of long documents over overlapping windows.
* :class:`AdvancedReranker` — the course's API (``rerank_with_confidence``, ``batch_rerank``),
  built correctly: inputs are never mutated, thresholds apply to probabilities, positions are
  recorded after sorting, and a batch equals the per-query calls.

Example
-------
>>> from course_lib.rerank import AdvancedReranker
>>> rr = AdvancedReranker()                      # the shipped course reranker, offline
>>> docs = [{"id": "a", "text": "The Eiffel Tower is in Paris."},
...         {"id": "b", "text": "Photosynthesis turns light into chemical energy."}]
>>> out = rr.rerank_with_confidence("Where is the Eiffel Tower?", docs, top_k=2, score_threshold=0.0)
>>> [d["id"] for d in out], "relevance_score" in docs[0]
(['a', 'b'], False)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from course_lib.calibration import Calibration


@runtime_checkable
class Reranker(Protocol):
    """What every consumer of a reranker needs."""

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Raw relevance logits, one per text (higher = more relevant)."""

    def probabilities(self, logits) -> np.ndarray:
        """Logits mapped to probabilities of relevance in [0, 1]."""


@dataclass
class ScoringStats:
    """What the last scoring call did: pairs scored, pairs truncated, queries capped."""

    pairs: int = 0
    truncated: int = 0
    queries_capped: int = 0
    windows: int = 0


class CrossEncoderScorer:
    """A :class:`Reranker` over a sentence-transformers ``CrossEncoder``.

    Args:
        model: a ``CrossEncoder``, or a name/path for :func:`course_lib.models.load_reranker`
            (None = the course reranker).
        batch_size: pairs per forward pass.
        max_query_tokens: longer queries are cut to this many word pieces (a query longer than
            the model's limit would otherwise make ``only_second`` truncation fail).
        long_documents: ``"truncate"`` (score the first ``max_length`` tokens) or ``"maxp"``
            (score overlapping windows and keep the best).
        window_stride: tokens between window starts for ``"maxp"``.
        calibration: maps logits to probabilities; default: the model's own (sigmoid).
    """

    def __init__(
        self,
        model=None,
        batch_size: int = 32,
        max_query_tokens: int = 64,
        long_documents: str = "truncate",
        window_stride: int = 96,
        calibration: Calibration | None = None,
        show_progress: bool = False,
    ):
        from course_lib.models import load_reranker

        if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model = load_reranker(model)
        if long_documents not in {"truncate", "maxp"}:
            raise ValueError("long_documents must be 'truncate' or 'maxp'")
        self.model = model
        self.tokenizer = model.tokenizer
        self.max_length = int(model.max_seq_length or 512)
        self.batch_size = batch_size
        self.max_query_tokens = max_query_tokens
        self.long_documents = long_documents
        self.window_stride = window_stride
        # The course reranker folds its fitted (Platt) calibration into the head, so the
        # plain sigmoid is calibrated for it; pass a fitted Calibration for other models.
        self.calibration = calibration or Calibration()
        self.show_progress = show_progress
        self.last_stats = ScoringStats()

    # -- protocol -------------------------------------------------------------------
    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        return self.score_pairs([(query, t) for t in texts])

    def probabilities(self, logits) -> np.ndarray:
        return self.calibration.probabilities(logits)

    # -- implementation ---------------------------------------------------------------
    def _cap(self, query: str) -> tuple[str, bool]:
        ids = self.tokenizer(query, add_special_tokens=False)["input_ids"]
        if len(ids) <= self.max_query_tokens:
            return query, False
        return self.tokenizer.decode(ids[: self.max_query_tokens]), True

    def _windows(self, query: str, text: str) -> list[str]:
        q_len = len(self.tokenizer(query, add_special_tokens=False)["input_ids"])
        room = max(16, self.max_length - q_len - 3)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) <= room:
            return [text]
        starts = list(range(0, max(1, len(ids) - room) + 1, self.window_stride))
        if starts[-1] + room < len(ids):
            starts.append(len(ids) - room)
        return [self.tokenizer.decode(ids[s : s + room]) for s in starts]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits of (query, text) pairs, computed in length-sorted batches."""
        import torch

        stats = ScoringStats(pairs=len(pairs))
        if not pairs:
            self.last_stats = stats
            return np.zeros(0, dtype=np.float32)
        capped: dict[str, str] = {}
        flat, owner = [], []
        for i, (q, t) in enumerate(pairs):
            if q not in capped:
                capped[q], was = self._cap(q)
                stats.queries_capped += int(was)
            q2 = capped[q]
            if self.long_documents == "maxp":
                wins = self._windows(q2, t)
                stats.windows += len(wins)
                flat.extend((q2, w) for w in wins)
                owner.extend([i] * len(wins))
            else:
                flat.append((q2, t))
                owner.append(i)
        lengths = [
            len(self.tokenizer(q, t, add_special_tokens=True, truncation=False)["input_ids"]) for q, t in flat
        ]
        stats.truncated = sum(1 for n in lengths if n > self.max_length) if self.long_documents == "truncate" else 0
        order = np.argsort(lengths, kind="stable")
        sorted_pairs = [flat[i] for i in order]
        logits_sorted = self.model.predict(
            sorted_pairs,
            batch_size=self.batch_size,
            activation_fn=torch.nn.Identity(),
            convert_to_numpy=True,
            show_progress_bar=self.show_progress,
        )
        flat_logits = np.empty(len(flat), dtype=np.float32)
        flat_logits[order] = np.asarray(logits_sorted, dtype=np.float32).reshape(-1)
        out = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), flat_logits)
        self.last_stats = stats
        return out


def _band(p: float, high: float, medium: float) -> str:
    return "high" if p >= high else "medium" if p >= medium else "low"


def validate_candidates(candidates) -> None:
    """Raise a clear error for input the rerankers cannot score.

    Each candidate must be a dict with a string ``"text"``; ids (``"id"``), when present,
    must be unique.
    """
    if not isinstance(candidates, (list, tuple)):
        raise TypeError(f"candidates must be a list of dicts, got {type(candidates).__name__}")
    seen = set()
    for i, c in enumerate(candidates):
        if not isinstance(c, dict):
            raise TypeError(f"candidate {i} is a {type(c).__name__}, expected a dict with a 'text' key")
        if "text" not in c:
            raise ValueError(f"candidate {i} has no 'text' key (keys: {sorted(c)[:5]})")
        if not isinstance(c["text"], str):
            raise TypeError(f"candidate {i}: 'text' must be a str, got {type(c['text']).__name__}")
        if "id" in c:
            if c["id"] in seen:
                raise ValueError(f"duplicate candidate id {c['id']!r} (candidate {i})")
            seen.add(c["id"])


class AdvancedReranker:
    """The course's reranker: confidence bands, probability thresholds, batch reranking.

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        scorer: an existing :class:`Reranker` to use instead of loading ``model_name``.
        calibration: overrides the scorer's logit -> probability map (see
            :mod:`course_lib.calibration`).
        confidence_bands: probability cut-offs for "high" and "medium" (else "low").
    """

    def __init__(
        self,
        model_name=None,
        *,
        scorer: Reranker | None = None,
        calibration: Calibration | None = None,
        confidence_bands: tuple[float, float] = (0.8, 0.5),
        batch_size: int = 32,
    ):
        self.scorer = scorer if scorer is not None else CrossEncoderScorer(model_name, batch_size=batch_size)
        self.calibration = calibration
        self.high, self.medium = confidence_bands

    @property
    def model(self):
        """The underlying ``CrossEncoder`` (for LangChain's stock compressor and the like)."""
        return getattr(self.scorer, "model", None)

    def probabilities(self, logits) -> np.ndarray:
        if self.calibration is not None:
            return self.calibration.probabilities(logits)
        return self.scorer.probabilities(logits)

    def _assemble(self, candidates, logits, top_k, score_threshold) -> list[dict]:
        probs = self.probabilities(logits)
        order = sorted(range(len(candidates)), key=lambda i: (-float(logits[i]), i))
        out = []
        for new_pos, i in enumerate(order):
            p = float(probs[i])
            if p < score_threshold:
                continue
            rec = dict(candidates[i])
            rec.update(
                relevance_score=p,
                logit=float(logits[i]),
                confidence=_band(p, self.high, self.medium),
                original_position=i,
                reranked_position=new_pos,
            )
            out.append(rec)
        return out if top_k is None else out[: max(0, int(top_k))]

    def rerank_with_confidence(
        self, query: str, candidates: list[dict], top_k: int | None = 10, score_threshold: float = 0.5
    ) -> list[dict]:
        """Score, sort, threshold and cut one query's candidates.

        Returns new dicts (the input is untouched) with ``relevance_score`` (a probability),
        ``logit``, ``confidence`` (high/medium/low), ``original_position`` (index in the input)
        and ``reranked_position`` (rank among *all* candidates after sorting, from 0), best
        first.  Candidates below ``score_threshold`` are dropped; ties keep input order.
        An empty candidate list returns ``[]``.
        """
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold is a probability and must lie in [0, 1], got {score_threshold}")
        validate_candidates(candidates)
        if not candidates:
            return []
        logits = self.scorer.score(query, [c["text"] for c in candidates])
        return self._assemble(candidates, logits, top_k, score_threshold)

    def batch_rerank(
        self,
        queries: list[str],
        candidates_list: list[list[dict]],
        batch_size: int = 32,
        top_k: int | None = 10,
        score_threshold: float = 0.5,
    ) -> list[list[dict]]:
        """Rerank many queries with one scoring pass over all their pairs.

        All pairs are scored together (length-sorted, ``batch_size`` per forward pass), then
        split back per query; the result equals ``[rerank_with_confidence(q, c, ...)]``.
        """
        if len(queries) != len(candidates_list):
            raise ValueError(f"{len(queries)} queries but {len(candidates_list)} candidate lists")
        for q in queries:
            if not isinstance(q, str) or not q.strip():
                raise ValueError("every query must be a non-empty string")
        for cands in candidates_list:
            validate_candidates(cands)
        pairs = [(q, c["text"]) for q, cands in zip(queries, candidates_list) for c in cands]
        old = getattr(self.scorer, "batch_size", None)
        if old is not None:
            self.scorer.batch_size = batch_size
        try:
            scorer_pairs = getattr(self.scorer, "score_pairs", None)
            if scorer_pairs is not None:
                logits = scorer_pairs(pairs)
            else:
                logits = np.concatenate([self.scorer.score(q, [c["text"] for c in cs]) for q, cs in zip(queries, candidates_list)] or [np.zeros(0)])
        finally:
            if old is not None:
                self.scorer.batch_size = old
        out, start = [], 0
        for cands in candidates_list:
            n = len(cands)
            out.append(self._assemble(cands, logits[start : start + n], top_k, score_threshold) if n else [])
            start += n
        return out
