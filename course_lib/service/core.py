"""The reranking service's engine: micro-batching across callers, a pair cache, deadlines, back-pressure.

``ScalableRerankingService`` keeps the course's ``process_batch_requests`` API and fixes its
sample code's bugs:

* the cache is keyed by (scorer fingerprint, query, passage text) — never by the query alone —
  so a second request for the same query with *different* candidates gets its own answer;
* each request gets results only for *its own* candidates, in score order, cut to its own
  ``top_k``; a request with bad fields gets its own error, the others are still answered;
* scoring runs in a worker thread, so the event loop keeps accepting requests.

What a service needs under concurrent load:

* **micro-batching** — requests that arrive within ``max_wait_ms`` of the first waiting one are
  merged, up to ``max_batch_pairs`` pairs, into one scoring pass; identical (query, passage)
  pairs are scored once; results are routed back to each caller (``batching=False``: one request
  per pass, the baseline to compare against).  Inside a scoring call a CPU runs forward passes of 64
  pairs (larger batches ran slower on the course's 2-core CPU), while a GPU runs the whole call as one
  padded batch of up to ``max_batch_pairs`` pairs (256 by default); on a GPU, where a batch's cost grows
  with its tokens rather than its pairs, the batcher also stops adding requests once a call holds
  :data:`GPU_BATCH_TOKENS` (65,536) estimated tokens;
* **deadlines** — a request that would miss its deadline gets the first-stage order back,
  flagged ``"degraded": true`` with a reason, instead of a late answer.  The rule, in two steps: at
  arrival the service estimates the wait from its measured pairs per second and the pairs ahead of the
  request; if that exceeds ``admission_fraction`` (60 %) of the request's time budget — the deadline
  minus ``deadline_margin_ms`` (100 ms, at most a quarter of the deadline) — it falls back at once,
  conservatively, since a pass runs slower under load than a moment before.  Otherwise the request is
  queued, and if it is still unscored when the budget runs out it falls back then, early enough for the
  fallback itself to arrive in time.  A request whose pairs are all in the cache is answered from it,
  deadline or not;
* **back-pressure** — at most ``max_queue_pairs`` pairs wait; beyond that :class:`ServiceBusy` is
  raised (HTTP 503 with ``Retry-After``) instead of letting the queue grow without limit; a request
  with more pairs than the queue can ever hold is refused outright (:class:`RequestTooLarge`, HTTP 413);
* statistics that stay correct under concurrency: every counter is updated on the event loop,
  never from the scoring thread.

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
import math
import time
from dataclasses import dataclass, field

from course_lib.caches import LRUScoreCache
from course_lib.scorers.base import require_scorer, Scorer, rank_results, validate_candidates, validate_query, validate_rank_args
from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib.errors import CourseError


class ServiceBusy(CourseError, RuntimeError):
    """The queue is full (or the service is stopping); retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: float = 1.0):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestError(CourseError, ValueError):
    """A request's own fields are invalid; the message names the field."""


class RequestTooLarge(RequestError):
    """A request that could never be served as sent (more pairs than the queue holds): HTTP 413."""


def _validate_request(req) -> dict:
    """Check one ``{"id"?, "query", "candidates", "top_k"?, "deadline_ms"?}`` request; returns it."""
    if not isinstance(req, dict):
        raise RequestError(f"request must be an object, got {type(req).__name__}")
    for key in ("query", "candidates"):
        if key not in req:
            raise RequestError(f"request is missing '{key}'")
    try:
        validate_query(req["query"])
        validate_candidates(req["candidates"])
        validate_rank_args(req.get("top_k", 10), 0.0)
    except (TypeError, ValueError) as exc:
        raise RequestError(str(exc)) from None
    if any("id" not in c for c in req["candidates"]):
        raise RequestError("every candidate needs an 'id'")
    deadline = req.get("deadline_ms")
    if deadline is not None and (isinstance(deadline, bool) or not isinstance(deadline, (int, float))
                                 or not math.isfinite(deadline) or deadline <= 0):
        raise RequestError(f"deadline_ms must be a positive number, got {deadline!r}")
    return req


def merge_jobs(jobs: list[tuple[str, list[str]]]) -> tuple[list[tuple[str, str]], list[list[int]]]:
    """The micro-batcher's merge step: one list of unique (query, passage) pairs for several requests,
    and for each request the positions of its pairs in that list (in the request's own order).

    Identical pairs — the same query with the same passage, whichever request sent them — are
    scored once; a passage shared by two *different* queries is two pairs.

    >>> pairs, where = merge_jobs([("q1", ["a", "b"]), ("q2", ["a"]), ("q1", ["b", "c"])])
    >>> pairs
    [('q1', 'a'), ('q1', 'b'), ('q2', 'a'), ('q1', 'c')]
    >>> where
    [[0, 1], [2], [1, 3]]
    """
    position: dict[tuple[str, str], int] = {}
    where = []
    for query, texts in jobs:
        idx = []
        for t in texts:
            idx.append(position.setdefault((query, t), len(position)))
        where.append(idx)
    return list(position), where


@dataclass
class _Job:
    query: str
    texts: list[str]
    future: asyncio.Future
    pairs: int = field(init=False)
    tokens: int = 0  # estimated tokens the model reads (for a token-budget batcher)
    queued: bool = True  # counted in the service's queued_pairs

    def __post_init__(self):
        self.pairs = len(self.texts)


#: The token budget of a micro-batch on a GPU (``max_batch_tokens="auto"``): about 340 pairs of 192 tokens.
GPU_BATCH_TOKENS = 65_536


def estimated_tokens(query: str, texts: list[str], max_length: int) -> int:
    """Tokens a model reads for these pairs, estimated from characters (about four a token in English),
    each pair capped at ``max_length``: what a token-budget batcher adds up (no tokenising on the event loop).

    >>> estimated_tokens("a query", ["short", "x" * 10_000], max_length=192)
    197
    """
    q = len(query) // 4 + 3
    return sum(min(max_length, q + len(t) // 4) for t in texts)


def _first_stage_order(candidates: list[dict], top_k: int | None) -> list[dict]:
    """The fallback answer: candidates in first-stage order (by their ``score`` when every candidate
    has one, else as given), marked with their positions and no reranker score."""
    idx = list(range(len(candidates)))
    if candidates and all(isinstance(c.get("score"), (int, float)) for c in candidates):
        idx.sort(key=lambda i: (-float(candidates[i]["score"]), i))
    out = [{**candidates[i], "relevance_score": None, "logit": None, "confidence": None,
            "original_position": i, "reranked_position": pos} for pos, i in enumerate(idx)]
    return out if top_k is None else out[: int(top_k)]


def _pair_encoder(scorer):
    """``(owner, encoder)``: the scorer — ``scorer`` or one it wraps — that has a ``pair_encoder()`` (a
    cross-encoder scorer) and its :class:`~course_lib.scorers.pair_encoding.PairEncoder`; ``(None, None)`` when
    none has one."""
    for _ in range(8):
        if scorer is None:
            break
        if callable(getattr(scorer, "pair_encoder", None)):
            return scorer, scorer.pair_encoder()
        scorer = getattr(scorer, "scorer", None) or getattr(scorer, "base", None)
    return None, None


class ScalableRerankingService:
    """Micro-batched, cached, deadline-aware reranking for many concurrent callers.

    Args:
        model_path: None (the course reranker) or any name/path ``load_reranker`` accepts.
        scorer: a loaded :class:`~course_lib.rerank.Scorer` to use instead of ``model_path``.
        max_batch_size: pairs per forward pass for a scorer built here (None: a micro-batch as one padded batch
            on a GPU; 64 on a CPU, where larger batches run slower — 29 against 33 pairs/s at 256 against 64 on
            the course's 2-core machine).
        max_batch_pairs: pairs merged into one scoring call at most.
        max_batch_tokens: a scoring call takes no more requests once it holds this many tokens (estimated by
            :func:`estimated_tokens`);
            ``"auto"``: :data:`GPU_BATCH_TOKENS` on a GPU, where a batch's cost follows its tokens, and no token limit on a CPU;
            None: pairs only.
        max_wait_ms: how long the first waiting request waits for others to join its batch.
        cache_size, cache_ttl_s: the pair cache (LRU, optional time to live); ``cache_size=0`` turns it off.
        max_queue_pairs: pairs allowed to wait; beyond it, :class:`ServiceBusy`.
        batching: False scores one request per call (the baseline).
        default_deadline_ms: the deadline of requests that set none (None = no deadline).
        deadline_margin_ms: a request falls back this long *before* its deadline (at most a quarter
            of it), so the fallback itself — built, serialised and sent while other requests are
            served — still arrives in time.
        admission_fraction: a request with a deadline is queued only if the expected wait is
            below this share of its time budget; otherwise it gets the fallback at once.
    """

    def __init__(self, model_path=None, max_batch_size: int | None = None, cache_size: int = 10_000,
                 scorer: Scorer | None = None, *, max_batch_pairs: int = 256, max_batch_tokens: int | str | None = "auto",
                 max_wait_ms: float = 5.0, cache_ttl_s: float | None = 3600.0,
                 max_queue_pairs: int = 4096, batching: bool = True, default_deadline_ms: float | None = None,
                 deadline_margin_ms: float = 100.0, admission_fraction: float = 0.6):
        require_scorer(scorer, optional=True)
        for name, v in (("max_batch_pairs", max_batch_pairs), ("max_queue_pairs", max_queue_pairs)):
            if int(v) < 1:
                raise ValueError(f"{name} must be at least 1, got {v}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.scorer = scorer if scorer is not None else CrossEncoderScorer(model_path, batch_size=max_batch_size or 64)
        self.max_length = int(getattr(self.scorer, "max_length", 512) or 512)
        on_gpu = str(getattr(getattr(self.scorer, "model", None), "device", "cpu")).startswith("cuda")
        if scorer is None and max_batch_size is None and on_gpu:  # a GPU scores a micro-batch as one padded batch
            self.scorer = self.scorer.configured(batch_size=max_batch_pairs)
        if max_batch_tokens == "auto":
            max_batch_tokens = GPU_BATCH_TOKENS if on_gpu else None
        if max_batch_tokens is not None and int(max_batch_tokens) < self.max_length:
            raise ValueError(f"max_batch_tokens must hold one full pair ({self.max_length} tokens), got {max_batch_tokens}")
        self.max_batch_tokens = None if max_batch_tokens is None else int(max_batch_tokens)
        self.fingerprint = self.scorer.fingerprint() or f"unnamed-{id(self.scorer)}"
        # keyed by the scorer's fingerprint (its weights in memory), the query and the passage
        self.cache = LRUScoreCache(cache_size, model_id=self.fingerprint, ttl_s=cache_ttl_s) if cache_size > 0 else None
        self.max_batch_pairs = int(max_batch_pairs)
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue_pairs = int(max_queue_pairs)
        self.batching = batching
        self.default_deadline_ms = default_deadline_ms
        self.queued_pairs = 0
        self.in_flight_pairs = 0
        self.pairs_per_s: float | None = None  # moving estimate from measured scoring passes (warm_up() seeds it)
        self.deadline_margin_ms = deadline_margin_ms
        self.admission_fraction = admission_fraction
        self.batch_listeners: list = []  # callables(pairs, requests, seconds), e.g. a metrics histogram
        #: another engine this one gives way to: a pass starts only while that one has nothing queued or in
        #: flight (a shadow model's engine yields to the primary's; see :mod:`course_lib.service.rollout`)
        self.yield_to: "ScalableRerankingService | None" = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop = None
        self._stopping = False
        self._stats = dict(requests=0, errors=0, degraded=0, busy=0, pairs_requested=0, pairs_scored=0,
                           cache_hits=0, cache_misses=0, batches=0, scoring_seconds=0.0)

    @classmethod
    def from_config(cls, config, scorer: Scorer | None = None) -> "ScalableRerankingService":
        """The engine a :class:`~course_lib.service.config.ServiceConfig` describes (on ``scorer``, else
        on ``config.model``)."""
        return cls(config.model, scorer=scorer, **config.engine_kwargs())

    # -- lifecycle -------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (another asyncio.run); a stopped service stays stopped
            self._loop = loop
            self._queue = asyncio.Queue()
            self.queued_pairs = 0
            self._stopping = False
            self._worker = loop.create_task(self._run(), name="reranking-batcher")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop accepting work, finish what is queued and in flight, then end the worker."""
        self._stopping = True
        if self._worker is None or self._worker.done():
            return
        t0 = time.monotonic()
        while (self.queued_pairs > 0 or (self._queue is not None and not self._queue.empty())) and time.monotonic() - t0 < timeout_s:
            await asyncio.sleep(0.01)
        await self._queue.put(None)  # the worker ends after the batch in progress
        try:
            await asyncio.wait_for(self._worker, max(0.1, timeout_s - (time.monotonic() - t0)))
        except (asyncio.TimeoutError, asyncio.CancelledError):
            self._worker.cancel()

    @property
    def stats(self) -> dict:
        """A consistent snapshot of the counters, plus derived rates."""
        s = dict(self._stats)
        looked = s["cache_hits"] + s["cache_misses"]
        s["cache_hit_rate"] = s["cache_hits"] / looked if looked else 0.0
        s["queued_pairs"] = self.queued_pairs
        s["pairs_per_s"] = self.pairs_per_s
        s["mean_batch_pairs"] = s["pairs_scored"] / s["batches"] if s["batches"] else 0.0
        return s

    # -- the worker --------------------------------------------------------------------------
    async def _next_batch(self) -> list[_Job] | None:
        first = await self._queue.get()
        if first is None:
            return None
        batch, pairs, tokens = [first], first.pairs, first.tokens
        if self.batching:
            until = time.monotonic() + self.max_wait_s
            while pairs < self.max_batch_pairs and (self.max_batch_tokens is None or tokens < self.max_batch_tokens):
                try:
                    job = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = until - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        job = await asyncio.wait_for(self._queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                if job is None:  # stop: put the sentinel back for the loop to see
                    self._queue.put_nowait(None)
                    break
                batch.append(job)
                pairs += job.pairs
                tokens += job.tokens
        for job in batch:
            self._dequeue(job)
        return batch

    def _dequeue(self, job: _Job) -> None:
        if job.queued:
            job.queued = False
            self.queued_pairs -= job.pairs

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            live = [j for j in batch if not j.future.done()]  # a caller past its deadline has left
            if live and self.yield_to is not None:
                await self._give_way()
                live = [j for j in live if not j.future.done()]
            if not live:
                continue
            try:
                await self._score(live)
            except Exception as exc:  # noqa: BLE001 - a failed pass fails its callers, not the service
                for j in live:
                    if not j.future.done():
                        j.future.set_exception(exc)

    async def _give_way(self, poll_s: float = 0.005) -> None:
        """Wait while :attr:`yield_to` has pairs queued or in flight (its callers come first)."""
        other = self.yield_to
        while (other.queued_pairs or other.in_flight_pairs) and not self._stopping:
            await asyncio.sleep(poll_s)

    async def _score(self, jobs: list[_Job]) -> None:
        unique, where = merge_jobs([(j.query, j.texts) for j in jobs])
        logits = [self.cache.get(q, t) if self.cache is not None else None for q, t in unique]
        misses = [i for i, z in enumerate(logits) if z is None]
        self._stats["cache_hits"] += len(unique) - len(misses)
        self._stats["cache_misses"] += len(misses)
        seconds = 0.0
        if misses:
            t0 = time.perf_counter()
            self.in_flight_pairs = len(misses)
            try:
                fresh = await asyncio.to_thread(self.scorer.score_pairs, [unique[i] for i in misses])
            finally:
                self.in_flight_pairs = 0
            seconds = time.perf_counter() - t0
            for i, z in zip(misses, fresh):
                logits[i] = float(z)
                if self.cache is not None:
                    self.cache.put(*unique[i], float(z))
            rate = len(misses) / seconds if seconds > 0 else None
            if rate:
                self.pairs_per_s = rate if self.pairs_per_s is None else 0.7 * self.pairs_per_s + 0.3 * rate
        self._stats["pairs_scored"] += len(misses)
        self._stats["batches"] += 1
        self._stats["scoring_seconds"] += seconds
        for fn in self.batch_listeners:
            fn(len(misses), len(jobs), seconds)
        for j, idx in zip(jobs, where):
            if not j.future.done():
                j.future.set_result([logits[i] for i in idx])

    # -- the API -----------------------------------------------------------------------------
    def expected_wait_s(self, pairs: int) -> float | None:
        """Seconds until ``pairs`` more pairs would be scored — those in flight and queued first — from the
        measured rate (None before any measurement: see :meth:`warm_up`)."""
        if not self.pairs_per_s:
            return None
        return (self.in_flight_pairs + self.queued_pairs + pairs) / self.pairs_per_s

    def warm_up(self, pairs: int = 32) -> float:
        """Score ``pairs`` throw-away pairs once (first passes are slow) and seed the rate estimate that
        deadline admission uses; returns pairs per second.  Call it before serving (the app does)."""
        probe = [("warm-up query about a topic", f"a warm-up passage number {i} with a few more words in it") for i in range(pairs)]
        self.scorer.score_pairs(probe[:4])
        t0 = time.perf_counter()
        self.scorer.score_pairs(probe)
        self.pairs_per_s = pairs / max(1e-6, time.perf_counter() - t0)
        return self.pairs_per_s

    def fit_to_window(self, query: str, texts: list[str], max_tokens: int | None = None,
                      from_end: bool = False) -> tuple[list[str], list[bool]]:
        """``texts`` cut to what the model reads of each beside ``query`` — and to ``max_tokens`` tokens when
        given (a client's per-document budget) — and whether each was cut.  Without ``max_tokens`` a cut keeps
        whole tokens up to where the model's own truncation would stop (the query capped as the scorer caps
        it), so the model reads the same ids and the score does not change; the answer can say which documents
        the model did not read to the end.  ``from_end`` keeps a text's last tokens instead.

        A scorer that reads long documents in windows (``long_documents="maxp"``) gets whole texts, none
        flagged, unless ``max_tokens`` is given; a scorer without a token-level encoder (not a cross-encoder
        with a fast tokenizer) gets whole texts, or texts cut to ``max_tokens`` whitespace-separated words.

        >>> svc = ScalableRerankingService()
        >>> texts, cut = svc.fit_to_window("what is a cat", ["a cat is a small mammal " * 100, "a dog"])
        >>> cut, len(texts[0]) < 2400
        ([True, False], True)
        >>> svc.fit_to_window("what is a cat", ["a cat is a small mammal"], max_tokens=3)
        (['a cat is'], [True])
        """
        if max_tokens is not None and int(max_tokens) < 1:
            raise RequestError(f"max_tokens_per_doc must be at least 1, got {max_tokens}")
        owner, encoder = _pair_encoder(self.scorer)
        if encoder is None:
            if max_tokens is None:
                return list(texts), [False] * len(texts)
            words = [t.split() for t in texts]
            cut = [len(w) > max_tokens for w in words]
            keep = [(w[-max_tokens:] if from_end else w[:max_tokens]) for w in words]
            return [" ".join(k) if c else t for k, c, t in zip(keep, cut, texts)], cut
        windows = getattr(owner, "long_documents", "truncate") == "maxp"
        if windows and max_tokens is None:
            return list(texts), [False] * len(texts)
        budget = encoder.passage_budget(query, getattr(owner, "max_query_tokens", None))
        if max_tokens is not None:
            budget = int(max_tokens) if windows else min(budget, int(max_tokens))
        return encoder.cut_to_tokens(texts, budget, from_end=from_end)

    def count_tokens(self, query: str, texts: list[str]) -> int | None:
        """Tokens the model reads for these pairs (each pair capped at the window, special tokens included),
        or None for a scorer without a token-level encoder: what a Jina-style answer reports as ``usage``."""
        owner, encoder = _pair_encoder(self.scorer)
        if encoder is None:
            return None
        q = encoder.count_tokens([query])[0]
        q = min(q, int(getattr(owner, "max_query_tokens", q) or q))
        return sum(min(encoder.max_length, encoder.specials + q + p) for p in encoder.count_tokens(texts))

    async def rerank(self, request: dict) -> dict:
        """Rerank one request; returns ``{"request_id", "results", "degraded", "reason"?}``.

        Raises :class:`RequestError` for invalid fields and :class:`ServiceBusy` when the queue
        is full.  Results have :func:`~course_lib.rerank.rank_results`' shape; a degraded answer
        is the first-stage order (:func:`_first_stage_order`).
        """
        req = _validate_request(request)
        self._ensure_started()
        rid, query, cands = req.get("id"), req["query"], req["candidates"]
        top_k = req.get("top_k", 10)
        deadline_ms = req.get("deadline_ms", self.default_deadline_ms)
        self._stats["requests"] += 1
        self._stats["pairs_requested"] += len(cands)
        if not cands:
            return {"request_id": rid, "results": [], "degraded": False}
        if self.cache is not None:  # answered from the cache alone: no queue, no model, no deadline risk
            cached = [self.cache.peek(query, c["text"]) for c in cands]
            if all(z is not None for z in cached):
                self._stats["cache_hits"] += len(cached)
                ranked = rank_results(cands, cached, self.scorer.probabilities(cached), top_k=top_k)
                return {"request_id": rid, "results": ranked, "degraded": False}
        if len(cands) > self.max_queue_pairs:  # would never fit, however long the caller waits
            raise RequestTooLarge(f"{len(cands)} candidates exceed the queue's capacity of {self.max_queue_pairs} pairs")
        if self._stopping:
            self._stats["busy"] += 1
            raise ServiceBusy("the service is shutting down", retry_after_s=5.0)
        if self.queued_pairs + len(cands) > self.max_queue_pairs:
            self._stats["busy"] += 1
            wait = self.expected_wait_s(0) or 1.0
            raise ServiceBusy(f"queue full: {self.queued_pairs} pairs waiting, {len(cands)} more would exceed the limit "
                              f"of {self.max_queue_pairs}", retry_after_s=max(1.0, math.ceil(wait)))
        t0 = time.monotonic()
        budget_s = None
        if deadline_ms is not None:
            budget_s = (deadline_ms - min(self.deadline_margin_ms, deadline_ms / 4.0)) / 1000.0
            expected = self.expected_wait_s(len(cands))
            # admit only what should finish with room to spare: under load a pass runs slower than
            # the rate measured a moment ago (the same cores also serve the HTTP traffic)
            if expected is not None and expected > self.admission_fraction * budget_s:
                return self._degraded(rid, cands, top_k, f"expected wait {expected * 1000:.0f} ms would miss the deadline of {deadline_ms:.0f} ms")
        texts = [c["text"] for c in cands]
        job = _Job(query, texts, self._loop.create_future(), tokens=estimated_tokens(query, texts, self.max_length))
        self.queued_pairs += job.pairs
        self._queue.put_nowait(job)
        try:
            if budget_s is None:
                logits = await job.future
            else:
                logits = await asyncio.wait_for(job.future, max(0.0, budget_s - (time.monotonic() - t0)))
        except asyncio.TimeoutError:
            self._dequeue(job)
            return self._degraded(rid, cands, top_k, f"not scored within the deadline of {deadline_ms:.0f} ms")
        ranked = rank_results(cands, logits, self.scorer.probabilities(logits), top_k=top_k)
        return {"request_id": rid, "results": ranked, "degraded": False}

    def _degraded(self, rid, cands, top_k, reason: str) -> dict:
        self._stats["degraded"] += 1
        return {"request_id": rid, "results": _first_stage_order(cands, top_k), "degraded": True, "reason": reason}

    async def process_batch_requests(self, requests: list[dict]) -> list[dict]:
        """Rerank a batch of ``{"id", "query", "candidates", "top_k"?, "deadline_ms"?}`` requests.

        Returns one ``{"request_id", "results", "degraded"}`` (or ``{"request_id", "error"}``) per
        request, in request order.  The requests are submitted together, so the micro-batcher
        merges them into as few scoring passes as the budget allows; a request with bad fields
        (a ``top_k`` of the wrong type or range included) gets its own error, the others are
        still answered.
        """
        if not isinstance(requests, (list, tuple)):
            raise TypeError(f"requests must be a list, got {type(requests).__name__}")

        async def one(req):
            try:
                return await self.rerank(req)
            except (RequestError, ServiceBusy) as exc:
                self._stats["errors"] += isinstance(exc, RequestError)
                return {"request_id": req.get("id") if isinstance(req, dict) else None, "error": str(exc)}

        return list(await asyncio.gather(*(one(r) for r in requests)))
