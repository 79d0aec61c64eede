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
from course_lib.scorers.pair_encoding import PairEncoder

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
        prefetch: prepare the next batch in a producer thread while the model runs this one (None: on
            when the model is on an accelerator).  The logits do not depend on it.

    The host path (:mod:`course_lib.scorers.pair_encoding`): each pair is tokenised once, long passages are cut
    before tokenising (same ids), truncations are counted from the same encoding, and the batches are the
    ones ``CrossEncoder.predict`` would make, so the logits are the library's to the bit.
    """

    SETTINGS = ("max_length", "batch_size", "max_query_tokens", "long_documents", "window_stride",
                "calibration", "show_progress", "autocast", "prefetch")

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
        prefetch: bool | None = None,
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
        # tokenise the next batch while the model runs this one: pays where the model runs elsewhere (a GPU);
        # on a CPU the two would share the same cores
        self.prefetch = (str(model.device).split(":")[0] != "cpu") if prefetch is None else bool(prefetch)
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

    # -- the host path and the forward pass ------------------------------------------------------
    def _encoder(self):
        """The :class:`~course_lib.scorers.pair_encoding.PairEncoder` for this max length (shared by every
        scorer on the model), or None for a model without a fast tokenizer."""
        cache = self.model.__dict__.setdefault("_course_pair_encoders", {})
        if self.max_length not in cache:
            try:
                cache[self.max_length] = PairEncoder(self.tokenizer, self.max_length)
            except TypeError:
                cache[self.max_length] = None
        return cache[self.max_length]

    def pair_encoder(self):
        """The scorer's :class:`~course_lib.scorers.pair_encoding.PairEncoder` (how many tokens of a passage the
        model reads, cutting passages to a token budget), or None for a model without a fast tokenizer."""
        return self._encoder()

    def _uses_features(self) -> bool:
        """Whether the model takes ready features (a sentence-transformers CrossEncoder with a fast tokenizer)."""
        return self._encoder() is not None and callable(getattr(self.model, "preprocess", None))

    def _batches(self, flat: list[tuple[str, str]]) -> list[np.ndarray]:
        """Positions of ``flat`` in scoring batches: longest first by characters, ``batch_size`` at a time —
        the order and batches ``CrossEncoder.predict`` makes, so the logits are the same to the bit."""
        order = np.argsort([-(len(q) + len(t)) for q, t in flat])
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _prepared(self, flat: list[tuple[str, str]], batches: list[np.ndarray], ahead: bool):
        """``(positions, tensors, truncated)`` per batch: tokenised once, padded, as torch tensors (pinned on
        CUDA).  With ``ahead`` a producer thread prepares the next batch while the caller runs this one."""
        import torch

        encoder, queries = self._encoder(), {}
        pin = str(self.model.device).startswith("cuda")

        def make(idx):
            rows, truncated = encoder.encode([flat[i] for i in idx], queries)
            tensors = {k: torch.from_numpy(v) for k, v in encoder.features(rows).items()}
            if pin:
                tensors = {k: v.pin_memory() for k, v in tensors.items()}
            return idx, tensors, sum(truncated)

        if not ahead or len(batches) < 2:
            yield from (make(b) for b in batches)
            return
        yield from _ahead(make, batches)

    def _autocast(self):
        import contextlib

        import torch

        if self.autocast == "bf16":
            from course_lib.models import autocast

            return autocast(str(self.model.device).split(":")[0])
        if self.autocast == "fp16":
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _predict(self, flat: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Raw logits of already-capped pairs, and how many had more than ``max_length`` tokens."""
        import torch

        if not self._uses_features():
            return self._predict_with_library(flat)
        out = np.empty(len(flat), dtype=np.float32)
        batches = self._batches(flat)
        n_truncated = 0
        device = self.model.device
        self.model.eval()  # a model fine-tuned in this process may still be in training mode
        steps = _progress(self._prepared(flat, batches, ahead=self.prefetch), len(batches), self.show_progress)
        with torch.inference_mode(), self._autocast():
            for idx, tensors, truncated in steps:
                features = {k: v.to(device, non_blocking=True) for k, v in tensors.items()}
                features["modality"] = "text"
                scores = self.model(features)["scores"]
                if torch.is_floating_point(scores) and torch.finfo(scores.dtype).bits < 32:
                    scores = scores.float()  # as CrossEncoder.predict: upcast before anything else
                out[idx] = scores.reshape(len(idx), -1)[:, 0].cpu().numpy()
                n_truncated += truncated
        return out, n_truncated

    def _predict_with_library(self, flat: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """``CrossEncoder.predict`` (models without a fast tokenizer): the library's host path."""
        import torch

        kwargs = {}
        if self.max_length != self._model_max:  # per call: the shared model is never changed
            kwargs["processing_kwargs"] = {"text": {"max_length": self.max_length}}
        enc = self.tokenizer([q for q, _ in flat], [t for _, t in flat], truncation=False)["input_ids"]
        n_truncated = sum(1 for ids in enc if len(ids) > self.max_length)
        with self._autocast():
            out = self.model.predict(flat, batch_size=self.batch_size, activation_fn=torch.nn.Identity(),
                                     convert_to_numpy=True, show_progress_bar=self.show_progress, **kwargs)
        return np.asarray(out, dtype=np.float32).reshape(-1), n_truncated

    def host_pass(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Everything :meth:`score_pairs` does before the model but the forward pass itself — capping,
        tokenising, padding, tensors — for ``course-lib bench --host``; returns the rows prepared."""
        flat, _, _ = self.expand_pairs(pairs)
        if not self._uses_features():
            raise TypeError("host_pass needs a sentence-transformers CrossEncoder with a fast tokenizer")
        return sum(len(idx) for idx, _, _ in self._prepared(flat, self._batches(flat), ahead=False))

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
        flat_logits, n_truncated = self._predict(flat)
        if self.long_documents == "truncate":  # windows never are: each fits max_length
            stats.truncated = n_truncated
        out = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), flat_logits)
        self.last_stats = stats
        return out


def _progress(steps, total: int, show: bool):
    if not show:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, total=total, desc="Batches")


def _ahead(make, items, depth: int = 2):
    """``make(item)`` for each item, computed by a producer thread up to ``depth`` items ahead of the
    consumer; an exception in the producer is raised in the consumer, and a consumer that stops early
    stops the producer."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def send(message) -> bool:
        while not stop.is_set():
            try:
                q.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if stop.is_set() or not send(("ok", make(item))):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            send(("error", exc))
            return
        send(("ok", done))

    thread = threading.Thread(target=produce, name="pair-encoder", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "error":
                raise value
            if value is done:
                return
            yield value
    finally:
        stop.set()
