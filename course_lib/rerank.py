"""Stage 2: the one scoring protocol, the one way from logits to ranked results, and the rerankers.

* :class:`Scorer` — the course's scoring primitive.  A scorer turns (query, passage) pairs into
  raw logits (:meth:`Scorer.score_pairs`); :meth:`~Scorer.score` and :meth:`~Scorer.probabilities`
  derive from it, and :meth:`~Scorer.fingerprint` names the scoring function for caches.  The
  cross-encoder, the cached scorer, the optimised scorers and test doubles are all Scorers, and
  everything that ranks takes one.
* :class:`CrossEncoderScorer` — a Scorer over a sentence-transformers ``CrossEncoder``:
  over-long queries capped, truncation counted, optional max-passage scoring of long documents,
  and a max length that is a setting of the *scorer* (:meth:`~CrossEncoderScorer.configured`
  gives another scorer on the same loaded model).
* :func:`rank_results` — the one function that sorts (stably), thresholds and builds result
  dicts; every ranker in the course calls it.  The result shape is documented there.
* :class:`AdvancedReranker` — the course's API (``rerank_with_confidence``, ``batch_rerank``).
  Domain systems take any :class:`Ranker` (anything with ``rerank_with_confidence``).

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

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from course_lib.calibration import Calibration


# -- the protocol -----------------------------------------------------------------------------
class Scorer(ABC):
    """Turns (query, passage) pairs into relevance logits.  Subclasses implement :meth:`score_pairs`.

    Attributes:
        calibration: maps logits to probabilities (default: the plain sigmoid, which is
            calibrated for the course reranker because its head has the fitted Platt
            parameters folded in).

    Example
    -------
    >>> class WordOverlap(Scorer):
    ...     def score_pairs(self, pairs):
    ...         return np.array([len(set(q.split()) & set(t.split())) - 1.0 for q, t in pairs])
    >>> WordOverlap().score("red apple", ["a red apple", "a pear"]).tolist()
    [1.0, -1.0]
    """

    calibration: Calibration = Calibration()

    @abstractmethod
    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits, one per (query, passage) pair, in input order (higher = more relevant)."""

    def score(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Logits of one query against several passages."""
        return np.asarray(self.score_pairs([(query, t) for t in texts]), dtype=np.float32)

    def probabilities(self, logits) -> np.ndarray:
        """Logits mapped to probabilities of relevance in [0, 1]."""
        return self.calibration.probabilities(logits)

    def fingerprint(self) -> str | None:
        """A stable id of the scoring function (weights and settings), or None if it has none.

        Caches key on it; a scorer without a fingerprint is never served cached scores.
        """
        return None

    def configured(self, **settings) -> "Scorer":
        """A scorer like this one with other settings.  Performance hints (``batch_size``) that a
        scorer has no use for are ignored; anything else it does not know is an error."""
        unknown = set(settings) - {"batch_size"}
        if unknown:
            raise TypeError(f"{type(self).__name__} has no setting(s) {sorted(unknown)}")
        return self


#: The protocol's earlier name, kept for code written against it.
Reranker = Scorer


@runtime_checkable
class Ranker(Protocol):
    """Anything that reranks one query's candidates into result dicts (see :func:`rank_results`)."""

    def rerank_with_confidence(self, query: str, candidates: list[dict], top_k: int | None = 10,
                               score_threshold: float = 0.5) -> list[dict]: ...


# -- input checks (every public entry point calls them before any work) ---------------------
def validate_query(query, name: str = "query") -> str:
    """``query`` if it is a string with some non-space text; else a clear error."""
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must be a non-empty string")
    return query


def validate_rank_args(top_k, score_threshold) -> None:
    """``top_k``: None or an int >= 0; ``score_threshold``: a probability in [0, 1]."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, Integral)):
        raise TypeError(f"top_k must be an int or None, got {type(top_k).__name__}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0, got {top_k}")
    if isinstance(score_threshold, bool) or not isinstance(score_threshold, Real):
        raise TypeError(f"score_threshold must be a number, got {type(score_threshold).__name__}")
    if not 0.0 <= float(score_threshold) <= 1.0:
        raise ValueError(f"score_threshold is a probability and must lie in [0, 1], got {score_threshold}")


def validate_candidates(candidates, name: str = "candidates") -> None:
    """Each candidate must be a dict with a string ``"text"``; ids (``"id"``), when present, unique."""
    if not isinstance(candidates, (list, tuple)):
        raise TypeError(f"{name} must be a list of dicts, got {type(candidates).__name__}")
    seen = set()
    for i, c in enumerate(candidates):
        if not isinstance(c, dict):
            raise TypeError(f"{name}[{i}] is a {type(c).__name__}, expected a dict with a 'text' key")
        if "text" not in c:
            raise ValueError(f"{name}[{i}] has no 'text' key (keys: {sorted(c)[:5]})")
        if not isinstance(c["text"], str):
            raise TypeError(f"{name}[{i}]: 'text' must be a str, got {type(c['text']).__name__}")
        if "id" in c:
            if c["id"] in seen:
                raise ValueError(f"duplicate candidate id {c['id']!r} ({name}[{i}])")
            seen.add(c["id"])


# -- the one way from logits to results -------------------------------------------------------
def confidence_band(p: float, bands: tuple[float, float] = (0.8, 0.5)) -> str:
    """``"high"`` at or above ``bands[0]``, ``"medium"`` at or above ``bands[1]``, else ``"low"``."""
    return "high" if p >= bands[0] else "medium" if p >= bands[1] else "low"


def rank_results(
    candidates: Sequence[dict],
    logits,
    probabilities,
    *,
    top_k: int | None = None,
    score_threshold: float = 0.0,
    order_by=None,
    bands: tuple[float, float] = (0.8, 0.5),
) -> list[dict]:
    """Sort candidates by score, drop those below a probability threshold, cut to ``top_k``.

    Every ranker in the course builds its results here, so they all have one shape: a **new**
    dict per kept candidate (the caller's dicts are never changed), best first, holding the
    candidate's own keys plus

    ==================== ===============================================================
    ``relevance_score``  calibrated probability of relevance (what thresholds apply to)
    ``logit``            the scorer's raw logit
    ``confidence``       ``"high"`` / ``"medium"`` / ``"low"`` by ``bands`` on the probability
    ``original_position`` index of the candidate in the caller's list (from 0)
    ``reranked_position`` rank among *all* candidates after sorting, before the threshold
                         and the cut (from 0)
    ==================== ===============================================================

    Args:
        order_by: the scores to sort by, higher first (default: ``logits``; the pipeline passes
            its fused scores).  Ties keep input order (a stable sort).
        score_threshold: drop results whose probability is below it (0 keeps everything).

    >>> rank_results([{"id": "a", "text": ""}, {"id": "b", "text": ""}], [0.0, 2.0], [0.5, 0.88],
    ...              score_threshold=0.6)[0]["id"]
    'b'
    """
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    probs = np.asarray(probabilities, dtype=np.float64).reshape(-1)
    keys = logits if order_by is None else np.asarray(order_by, dtype=np.float64).reshape(-1)
    if not (len(candidates) == len(logits) == len(probs) == len(keys)):
        raise ValueError(f"{len(candidates)} candidates but {len(logits)} logits / {len(probs)} probabilities")
    order = sorted(range(len(candidates)), key=lambda i: (-keys[i], i))
    out = []
    for new_pos, i in enumerate(order):
        p = float(probs[i])
        if p < score_threshold:
            continue
        rec = dict(candidates[i])
        rec.update(
            relevance_score=p,
            logit=float(logits[i]),
            confidence=confidence_band(p, bands),
            original_position=i,
            reranked_position=new_pos,
        )
        out.append(rec)
    return out if top_k is None else out[: int(top_k)]


# -- the cross-encoder --------------------------------------------------------------------------
@dataclass
class ScoringStats:
    """What the last scoring call did: pairs scored, pairs truncated, queries capped, windows."""

    pairs: int = 0
    truncated: int = 0
    queries_capped: int = 0
    windows: int = 0


def cap_query(tokenizer, query: str, max_tokens: int) -> tuple[str, bool]:
    """Cut a query to ``max_tokens`` word pieces; returns ``(query, was_cut)``.

    A query longer than the pair's token limit would crowd out the passage (or make
    ``only_second`` truncation fail), so both scoring and the training recipe cap it.
    """
    ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return query, False
    return tokenizer.decode(ids[:max_tokens]), True


def weights_fingerprint(module) -> str:
    """A hash of a torch module's parameters and buffers *as they are in memory*.

    Two scorers over the same saved model agree; a model fine-tuned in this process does not
    (a hash of the files on disk would still name the model it started from).
    """
    import torch

    h = hashlib.sha1()
    with torch.no_grad():
        for name, t in sorted(module.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class CrossEncoderScorer(Scorer):
    """A :class:`Scorer` over a sentence-transformers ``CrossEncoder``.

    Args:
        model: a ``CrossEncoder``, or a name/path for :func:`course_lib.models.load_reranker`
            (None = the course reranker).  Load it once and share it: scorers with other
            settings (:meth:`configured`) use the same model.
        max_length: token limit of a (query, passage) pair (None = the model's own).
        batch_size: pairs per forward pass.
        max_query_tokens: longer queries are cut to this many word pieces.
        long_documents: ``"truncate"`` (score the first ``max_length`` tokens) or ``"maxp"``
            (score overlapping windows and keep the best).
        window_stride: tokens between window starts for ``"maxp"``.
        calibration: maps logits to probabilities; default: the model's own (sigmoid).
        autocast: ``"bf16"`` to score under bfloat16 autocast (fast only on hardware with bf16
            units), ``"fp16"`` under float16 autocast (a GPU's fast path; CUDA only), None for the
            model's own precision.
    """

    SETTINGS = ("max_length", "batch_size", "max_query_tokens", "long_documents", "window_stride",
                "calibration", "show_progress", "autocast")

    def __init__(
        self,
        model=None,
        max_length: int | None = None,
        batch_size: int = 32,
        max_query_tokens: int = 64,
        long_documents: str = "truncate",
        window_stride: int = 96,
        calibration: Calibration | None = None,
        show_progress: bool = False,
        autocast: str | None = None,
    ):
        from course_lib.models import load_reranker

        if model is None or isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
            model = load_reranker(model)
        if long_documents not in {"truncate", "maxp"}:
            raise ValueError("long_documents must be 'truncate' or 'maxp'")
        if autocast not in (None, "bf16", "fp16"):
            raise ValueError("autocast must be None, 'bf16' or 'fp16'")
        if autocast == "fp16" and str(model.device).split(":")[0] != "cuda":
            raise ValueError(f"autocast='fp16' needs a CUDA device (this model is on {model.device}); use 'bf16' or None")
        model_max = int(model.max_seq_length or 512)
        if max_length is not None and not 8 <= int(max_length) <= model_max:
            raise ValueError(f"max_length must lie in [8, {model_max}] for this model, got {max_length}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.model = model
        self.tokenizer = model.tokenizer
        self.max_length = int(max_length or model_max)
        self.batch_size = int(batch_size)
        self.max_query_tokens = max_query_tokens
        self.long_documents = long_documents
        self.window_stride = window_stride
        # The course reranker folds its fitted (Platt) calibration into the head, so the
        # plain sigmoid is calibrated for it; pass a fitted Calibration for other models.
        self.calibration = calibration or Calibration()
        self.show_progress = show_progress
        self.autocast = autocast
        self.last_stats = ScoringStats()
        self._model_max = model_max

    def configured(self, **settings) -> "CrossEncoderScorer":
        """Another scorer on the *same* loaded model with some settings changed.

        >>> short = CrossEncoderScorer().configured(max_length=128)
        >>> short.max_length
        128
        """
        unknown = set(settings) - set(self.SETTINGS)
        if unknown:
            raise TypeError(f"CrossEncoderScorer has no setting(s) {sorted(unknown)}")
        current = {k: getattr(self, k) for k in self.SETTINGS}
        return CrossEncoderScorer(self.model, **{**current, **settings})

    def fingerprint(self) -> str:
        """Weights in memory (:func:`weights_fingerprint`) plus every setting that changes a logit."""
        parts = [weights_fingerprint(self._transformer()), self.max_length, self.max_query_tokens, self.long_documents,
                 self.window_stride if self.long_documents == "maxp" else "", self.autocast or ""]
        return hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:16]

    def _transformer(self):
        return self.model[0].auto_model if hasattr(self.model, "__getitem__") else self.model.model

    def attention(self, query: str, text: str, layer: int = -1):
        """Attention from query tokens to passage tokens in one layer, averaged over heads.

        Returns ``(query_tokens, passage_tokens, matrix)``; special tokens are dropped
        (what :func:`course_lib.theory.attention_map` shows).  Needs a BERT-style model.
        """
        import torch

        hf = self._transformer()
        tok = self.tokenizer
        enc = tok(query, text, return_tensors="pt", truncation="only_second", max_length=self.max_length)
        enc = {k: v.to(hf.device) for k, v in enc.items()}
        bert = getattr(hf, "bert", None) or getattr(hf, hf.base_model_prefix)
        prev = bert.config._attn_implementation
        bert.set_attn_implementation("eager")
        try:
            with torch.no_grad():
                out = bert(**enc, output_attentions=True)
        finally:
            bert.set_attn_implementation(prev)
        att = out.attentions[layer][0].mean(0).cpu().numpy()
        ids = enc["input_ids"][0].cpu().tolist()
        tt = enc["token_type_ids"][0].cpu().tolist()
        special = set(tok.all_special_ids)
        q_idx = [i for i, (t, s) in enumerate(zip(ids, tt)) if s == 0 and t not in special]
        d_idx = [i for i, (t, s) in enumerate(zip(ids, tt)) if s == 1 and t not in special]
        tokens = tok.convert_ids_to_tokens(ids)
        return [tokens[i] for i in q_idx], [tokens[i] for i in d_idx], att[np.ix_(q_idx, d_idx)]

    # -- implementation ---------------------------------------------------------------
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

    def _predict(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        import contextlib

        import torch

        kwargs = {}
        if self.max_length != self._model_max:  # per call: the shared model is never changed
            kwargs["processing_kwargs"] = {"text": {"max_length": self.max_length}}
        ctx = contextlib.nullcontext()
        if self.autocast == "bf16":
            from course_lib.models import autocast

            ctx = autocast(str(self.model.device).split(":")[0])
        elif self.autocast == "fp16":
            ctx = torch.autocast("cuda", dtype=torch.float16)
        with ctx:
            # CrossEncoder.predict sorts pairs by length itself, so batches carry little padding
            out = self.model.predict(
                pairs,
                batch_size=self.batch_size,
                activation_fn=torch.nn.Identity(),
                convert_to_numpy=True,
                show_progress_bar=self.show_progress,
                **kwargs,
            )
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def expand_pairs(self, pairs, max_query_tokens: int | None = None, long_documents: str | None = None):
        """The pairs a model actually scores: queries capped, and with ``"maxp"`` each passage cut into
        windows.  Returns ``(flat pairs, owner index of each, stats)``; a pair's score is the max over
        its rows (what :meth:`score_pairs` does, and :class:`course_lib.onnx_scorer.OnnxScorer` too)."""
        max_query_tokens = self.max_query_tokens if max_query_tokens is None else max_query_tokens
        long_documents = self.long_documents if long_documents is None else long_documents
        stats = ScoringStats(pairs=len(pairs))
        capped: dict[str, str] = {}
        flat, owner = [], []
        for i, (q, t) in enumerate(pairs):
            if q not in capped:
                capped[q], was = cap_query(self.tokenizer, q, max_query_tokens)
                stats.queries_capped += int(was)
            q2 = capped[q]
            if long_documents == "maxp":
                wins = self._windows(q2, t)
                stats.windows += len(wins)
                flat.extend((q2, w) for w in wins)
                owner.extend([i] * len(wins))
            else:
                flat.append((q2, t))
                owner.append(i)
        return flat, owner, stats

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits of (query, text) pairs."""
        if not len(pairs):
            self.last_stats = ScoringStats(pairs=0)
            return np.zeros(0, dtype=np.float32)
        flat, owner, stats = self.expand_pairs(pairs)
        if self.long_documents == "truncate":
            enc = self.tokenizer([q for q, _ in flat], [t for _, t in flat], truncation=False)["input_ids"]
            stats.truncated = sum(1 for ids in enc if len(ids) > self.max_length)
        flat_logits = self._predict(flat)
        out = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), flat_logits)
        self.last_stats = stats
        return out


# -- the course's reranker -----------------------------------------------------------------------
class AdvancedReranker:
    """The course's reranker: confidence bands, probability thresholds, batch reranking.

    Args:
        model_name: None (the course reranker) or any name/path ``load_reranker`` accepts.
        scorer: an existing :class:`Scorer` to use instead of loading ``model_name``.
        calibration: overrides the scorer's logit -> probability map (see
            :mod:`course_lib.calibration`).
        confidence_bands: probability cut-offs for "high" and "medium" (else "low").
    """

    def __init__(
        self,
        model_name=None,
        *,
        scorer: Scorer | None = None,
        calibration: Calibration | None = None,
        confidence_bands: tuple[float, float] = (0.8, 0.5),
        batch_size: int = 32,
    ):
        if scorer is not None and not isinstance(scorer, Scorer):
            raise TypeError(f"scorer must be a course_lib.rerank.Scorer, got {type(scorer).__name__}")
        self.scorer = scorer if scorer is not None else CrossEncoderScorer(model_name, batch_size=batch_size)
        self.calibration = calibration
        self.bands = tuple(confidence_bands)

    def probabilities(self, logits) -> np.ndarray:
        if self.calibration is not None:
            return self.calibration.probabilities(logits)
        return self.scorer.probabilities(logits)

    def _results(self, candidates, logits, top_k, score_threshold) -> list[dict]:
        return rank_results(candidates, logits, self.probabilities(logits), top_k=top_k,
                            score_threshold=score_threshold, bands=self.bands)

    def rerank_with_confidence(
        self, query: str, candidates: list[dict], top_k: int | None = 10, score_threshold: float = 0.5
    ) -> list[dict]:
        """Score, sort, threshold and cut one query's candidates (result shape: :func:`rank_results`).

        The input is untouched; ties keep input order; an empty candidate list returns ``[]``.
        """
        validate_query(query)
        validate_rank_args(top_k, score_threshold)
        validate_candidates(candidates)
        if not candidates:
            return []
        logits = self.scorer.score(query, [c["text"] for c in candidates])
        return self._results(candidates, logits, top_k, score_threshold)

    def batch_rerank(
        self,
        queries: list[str],
        candidates_list: list[list[dict]],
        batch_size: int | None = None,
        top_k: int | None = 10,
        score_threshold: float = 0.5,
    ) -> list[list[dict]]:
        """Rerank many queries with one scoring pass over all their pairs.

        All pairs are scored together (``batch_size`` per forward pass; None = the scorer's),
        then split back per query; the result equals ``[rerank_with_confidence(q, c, ...)]``,
        and the same arguments are rejected by both.
        """
        if not isinstance(queries, (list, tuple)) or not isinstance(candidates_list, (list, tuple)):
            raise TypeError("queries and candidates_list must be lists")
        if len(queries) != len(candidates_list):
            raise ValueError(f"{len(queries)} queries but {len(candidates_list)} candidate lists")
        validate_rank_args(top_k, score_threshold)
        for i, (q, cands) in enumerate(zip(queries, candidates_list)):
            validate_query(q, f"queries[{i}]")
            validate_candidates(cands, f"candidates_list[{i}]")
        scorer = self.scorer if batch_size is None else self.scorer.configured(batch_size=batch_size)
        pairs = [(q, c["text"]) for q, cands in zip(queries, candidates_list) for c in cands]
        logits = scorer.score_pairs(pairs) if pairs else np.zeros(0, dtype=np.float32)
        out, start = [], 0
        for cands in candidates_list:
            n = len(cands)
            out.append(self._results(cands, logits[start : start + n], top_k, score_threshold) if n else [])
            start += n
        return out
