"""A :class:`~course_lib.scorers.base.Scorer` over a sentence-transformers ``CrossEncoder``.

Over-long queries are capped (:func:`cap_query`), truncation is counted (``last_stats``), long
documents can be scored as overlapping windows (max-passage), and the max length is a setting of
the *scorer* (:meth:`CrossEncoderScorer.configured` gives another scorer on the same loaded model).
:func:`weights_fingerprint` names the weights *in memory*, so caches never serve a fine-tuned
model the scores of the model it started from.

Example
-------
>>> from course_lib.scorers import CrossEncoderScorer
>>> scorer = CrossEncoderScorer()                  # the shipped course reranker, offline
>>> logits = scorer.score("Where is the Eiffel Tower?", ["The Eiffel Tower is in Paris.", "Bananas are yellow."])
>>> bool(logits[0] > logits[1])
True
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from course_lib.calibration import Calibration
from course_lib.scorers.base import Scorer, ScoringStats

__all__ = ["CrossEncoderScorer", "cap_query", "weights_fingerprint"]


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
        its rows (what :meth:`score_pairs` does, and :class:`course_lib.scorers.onnx.OnnxScorer` too)."""
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
