"""Changing the model safely: a candidate reranker in *shadow* or as a *canary* beside the primary.

A new model (the next stage of the course reranker, or one fine-tuned for a domain) should not replace the
primary blind.  :class:`Rollout` holds two engines — the primary's and the candidate's, each a
:class:`~course_lib.service.core.ScalableRerankingService` with its own queue, cache and fingerprint — and
runs one of two plans:

* **shadow** (``mode="shadow"``, ``share`` = the sampled share): every request is answered by the primary; a
  sampled share is *also* scored by the candidate, after the primary's answer is sent, and the two rankings
  are compared (:func:`agreement`: overlap of the top 10, rank correlation over all candidates, and the NDCG@10
  difference when the candidates carry relevance ``label``\\s).  The shadow never delays an answer: its engine
  has its own bounded queue, starts a scoring pass only while the primary's engine has nothing queued or in
  flight (:attr:`~course_lib.service.core.ScalableRerankingService.yield_to`), and a sampled request that finds
  its queue full, or waits past ``shadow_deadline_ms`` (30 s by default), is *dropped* and counted, not waited
  for.  ``course-lib serve --shadow PATH --shadow-rate 0.1`` scores the shadow in passes of
  :data:`SHADOW_BATCH_PAIRS` (8) pairs, so a pass that has started ends soon, on a queue of
  :data:`SHADOW_QUEUE_PAIRS` pairs.  The shadow can take CPU from the primary, but the primary never waits in
  line behind it.
* **canary** (``mode="canary"``, ``share`` = the canary's share): a share of requests is *answered* by the
  candidate.  Every answer names the model that ranked it (``model``: its fingerprint; the app also sends
  ``X-Rerank-Model``), and the metrics count answers and their latency by model.  A canary that fails is
  answered by the primary and counted (``rerank_canary_fallbacks_total``).  ``course-lib serve --canary PATH
  --canary-share 0.05``.  The share is a hash, so it tends to ``share`` over many distinct questions and is
  whatever the hashes give on a few; a canary's answers are for watching what only real answers show (errors,
  latency, complaints) by model, not ranking quality, which is what the shadow and labelled sets are for.

Which requests are sampled is a pure function of the query text (:func:`sampled`): the same question always goes
the same way — a user asking twice does not see two models, a replay is reproducible, and the pair caches keep
working.

The NDCG@10 difference is computed on what the request carries: its ideal ranking is built from the labelled
candidates, so a relevant passage the first stage missed does not count, and a request with no relevant
candidate is left out.  Agreement says how *different* a candidate is, not whether it is better: only labels
say that (notebook 07 replays a fine-tuned candidate that agrees broadly and ranks worse).

What a shadow costs the primary: ``python scripts/shadow_latency.py`` starts ``course-lib serve`` without and
with ``--shadow`` (a second copy of the course reranker) and sends each the same bounded load, alternating the
settings over several rounds (record: ``eval_cache/bench/shadow-latency-cpu.json``).  A shadow pass that has
started shares the cores with whatever primary request arrives meanwhile, so its cost lands in the primary's
tail (p95) rather than its median; on a primary that is never idle the shadow compares little and drops the
rest of its sample.  There, run the shadow on another machine, or replay the traffic later.  Passes of 8 pairs
rather than one pass per shadowed request: an earlier run with 20-pair passes cost the primary more throughput
(the record's ``note``).

Metrics (Prometheus, registered by :meth:`Rollout.register_metrics`; ``deploy/prometheus/rules.yml`` alerts on
them): ``rerank_model_answers_total{model,role}``, ``rerank_model_latency_seconds{model,role}``,
``rerank_canary_fallbacks_total``, ``rerank_shadow_requests_total{candidate,outcome}`` (outcome ``compared``,
``dropped`` or ``failed``), the
histogram ``rerank_shadow_top_overlap`` and the summaries ``rerank_shadow_rank_correlation`` and
``rerank_shadow_ndcg_diff`` (candidate minus primary; only for labelled requests) — each with ``_sum`` and
``_count``, so a rule divides one rate by the other for the mean.

Example
-------
>>> import asyncio
>>> from course_lib.scorers.base import Scorer
>>> class Length(Scorer):                     # a toy model: longer passages first
...     def score_pairs(self, pairs):
...         return [float(len(t)) for _, t in pairs]
...     def fingerprint(self):
...         return "length"
>>> class Reverse(Length):                    # a toy candidate: shorter passages first
...     def score_pairs(self, pairs):
...         return [-float(len(t)) for _, t in pairs]
...     def fingerprint(self):
...         return "reverse"
>>> rollout = Rollout(ScalableRerankingService(scorer=Length()), ScalableRerankingService(scorer=Reverse()),
...                   mode="shadow", share=1.0)
>>> request = {"query": "q", "top_k": 2, "candidates": [{"id": "a", "text": "aaa", "label": 1},
...                                                     {"id": "b", "text": "b"}, {"id": "c", "text": "cc"}]}
>>> async def replay():
...     answer = await rollout.rerank(request)
...     await rollout.drain()
...     return answer
>>> answer = asyncio.run(replay())
>>> answer["model"], [r["id"] for r in answer["results"]]
('length', ['a', 'c'])
>>> r = rollout.report()
>>> r["shadow"]["compared"], r["shadow"]["mean_rank_correlation"], r["shadow"]["mean_ndcg_diff"]
(1, -1.0, -0.5)
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque

from course_lib import metrics
from course_lib.service.core import RequestError, ScalableRerankingService, ServiceBusy, _validate_request

__all__ = ["Rollout", "agreement", "from_config", "ndcg_at", "sampled"]

MODES = ("shadow", "canary")


def sampled(query: str, share: float, salt: str = "") -> bool:
    """Whether a request for ``query`` falls in a ``share`` (0..1) of traffic: the first 8 bytes of the
    SHA-256 of ``salt`` + query, read as a fraction of 2**64, below ``share``.  The same query always gets the
    same answer (a replay is reproducible; a user asking twice sees one model), and over many distinct queries
    the share sampled tends to ``share``.

    >>> sampled("anything", 0.0), sampled("anything", 1.0)
    (False, True)
    >>> sum(sampled(f"question {i}", 0.1) for i in range(10_000))
    1060
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must lie in [0, 1], got {share}")
    digest = hashlib.sha256((salt + query).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64 < share


def ndcg_at(ranked_ids: list[str], labels: dict[str, float], k: int = 10) -> float | None:
    """NDCG@k of one ranking (ids, best first) with graded ``labels`` (the ideal built from the labels given):
    :func:`course_lib.metrics.ndcg` for one query; None when no label is positive.

    >>> ndcg_at(["a", "b"], {"b": 1}), ndcg_at(["b", "a"], {"b": 1}), ndcg_at(["a"], {"a": 0})
    (0.6309297535714575, 1.0, None)
    """
    per_query = metrics.ndcg({"q": {d: -i for i, d in enumerate(ranked_ids)}}, {"q": labels}, k)
    return per_query.get("q")  # metrics skips a query without a positive label


def agreement(primary: list[str], candidate: list[str], k: int = 10, labels: dict[str, float] | None = None) -> dict:
    """How far two rankings of the *same* candidates agree.

    ``top_overlap``: the share of the primary's top ``k`` that is also in the candidate's top ``k``;
    ``rank_correlation``: Spearman's rho over every candidate (1 = same order, -1 = reversed; 1.0 for one
    candidate); with ``labels`` (id -> grade) that include a positive grade, ``ndcg_primary``,
    ``ndcg_candidate`` and ``ndcg_diff`` (candidate minus primary) at ``k``.

    >>> agreement(["a", "b", "c", "d"], ["b", "a", "c", "d"], k=2)
    {'top_overlap': 1.0, 'rank_correlation': 0.8}
    >>> agreement(["a", "b", "c"], ["c", "b", "a"], k=1, labels={"a": 2})
    {'top_overlap': 0.0, 'rank_correlation': -1.0, 'ndcg_primary': 1.0, 'ndcg_candidate': 0.0, 'ndcg_diff': -1.0}
    """
    if sorted(primary) != sorted(candidate):
        raise ValueError("agreement compares two rankings of the same candidates")
    n = len(primary)
    top = min(k, n)
    out = {"top_overlap": len(set(primary[:top]) & set(candidate[:top])) / top if top else 1.0}
    if n < 2:
        out["rank_correlation"] = 1.0
    else:
        where = {d: i for i, d in enumerate(candidate)}
        d2 = sum((i - where[d]) ** 2 for i, d in enumerate(primary))
        out["rank_correlation"] = round(1.0 - 6.0 * d2 / (n * (n * n - 1)), 12)
    if labels:
        a, b = ndcg_at(primary, labels, k), ndcg_at(candidate, labels, k)
        if a is not None:
            out.update(ndcg_primary=a, ndcg_candidate=b, ndcg_diff=b - a)
    return out


def _labels(candidates: list[dict]) -> dict[str, float] | None:
    """The candidates' relevance ``label``s (id -> grade), or None when none carries one."""
    labels = {c["id"]: float(c["label"]) for c in candidates
              if isinstance(c.get("label"), (int, float)) and not isinstance(c.get("label"), bool)}
    return labels or None


class Rollout:
    """A candidate model beside the primary: shadowed on a sampled share, or answering a canary share.

    Args:
        primary: the engine that answers (the model in production).
        candidate: the engine of the new model.  In shadow mode it is set to give way to the primary
            (``candidate.yield_to = primary``); give it a small queue (``max_queue_pairs``): what does not fit
            is dropped, not waited for.
        mode: ``"shadow"`` or ``"canary"``.
        share: the share of requests (0..1) shadowed, or answered by the canary.
        k: the depth the shadow compares at (top-``k`` overlap, NDCG@``k``).
        shadow_deadline_ms: a shadowed request not scored by then is dropped (its engine's deadline fallback).
        shadow_pass_pairs: split a shadowed request into parts of this many candidates, each its own scoring pass
            (give the candidate's engine ``max_batch_pairs`` of the same size): a pass cannot be interrupted once
            started, so smaller passes shorten the time a primary request that arrives meanwhile shares the cores;
            None: the whole request in one pass.
        salt: changes which queries are sampled (:func:`sampled`).
        history: how many recent comparisons :meth:`report` keeps, one record each.
    """

    def __init__(self, primary: ScalableRerankingService, candidate: ScalableRerankingService, mode: str = "shadow",
                 share: float = 0.1, *, k: int = 10, shadow_deadline_ms: float = 30_000.0, salt: str = "",
                 history: int = 1000, shadow_pass_pairs: int | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be 'shadow' or 'canary', got {mode!r}")
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must lie in [0, 1], got {share}")
        if candidate is primary:
            raise ValueError("the candidate needs an engine of its own (its own queue and cache)")
        self.primary, self.candidate, self.mode, self.share = primary, candidate, mode, float(share)
        self.k, self.shadow_deadline_ms, self.salt = int(k), float(shadow_deadline_ms), salt
        if shadow_pass_pairs is not None and int(shadow_pass_pairs) < 1:
            raise ValueError(f"shadow_pass_pairs must be at least 1, got {shadow_pass_pairs}")
        self.shadow_pass_pairs = None if shadow_pass_pairs is None else int(shadow_pass_pairs)
        if mode == "shadow":
            candidate.yield_to = primary
        self.records: deque = deque(maxlen=history)
        self.listeners: list = []  # callables(event: str, **fields), e.g. metrics
        self._tasks: set[asyncio.Task] = set()
        self._counts = {"answered_primary": 0, "answered_candidate": 0, "canary_fallbacks": 0,
                        "shadow_sampled": 0, "shadow_compared": 0, "shadow_dropped": 0, "shadow_failed": 0}

    # -- what the app calls ------------------------------------------------------------------
    @property
    def fingerprints(self) -> dict:
        return {"primary": self.primary.fingerprint, "candidate": self.candidate.fingerprint}

    def routes_to_candidate(self, query: str) -> bool:
        """Whether this query is sampled (shadowed, or answered by the canary)."""
        return sampled(query, self.share, self.salt)

    async def rerank(self, request: dict) -> dict:
        """The engine's :meth:`~course_lib.service.core.ScalableRerankingService.rerank`, plus ``model`` (the
        fingerprint of the model that ranked the answer) and ``role`` (``primary`` or ``candidate``)."""
        req = _validate_request(request)
        chosen = self.routes_to_candidate(req["query"])
        if self.mode == "canary" and chosen:
            t0 = time.perf_counter()
            try:
                out = await self.candidate.rerank(req)
            except RequestError:
                raise
            except Exception as exc:  # noqa: BLE001 - a failing (or busy) canary falls back to the primary
                self._counts["canary_fallbacks"] += 1
                self._emit("canary_fallback", error=type(exc).__name__)
            else:
                return self._answered(out, "candidate", time.perf_counter() - t0)
        if self.mode == "shadow" and chosen:
            t0 = time.perf_counter()
            full = await self.primary.rerank({**req, "top_k": None})  # the whole ranking, for the comparison
            seconds = time.perf_counter() - t0
            top_k = req.get("top_k", 10)
            out = {**full, "results": full["results"] if top_k is None else full["results"][: int(top_k)]}
            if not full.get("degraded"):
                self._shadow(req, full["results"])
            return self._answered(out, "primary", seconds)
        t0 = time.perf_counter()
        out = await self.primary.rerank(req)
        return self._answered(out, "primary", time.perf_counter() - t0)

    def _answered(self, out: dict, role: str, seconds: float) -> dict:
        engine = self.primary if role == "primary" else self.candidate
        self._counts[f"answered_{role}"] += 1
        self._emit("answered", model=engine.fingerprint, role=role, seconds=seconds)
        return {**out, "model": engine.fingerprint, "role": role}

    # -- the shadow --------------------------------------------------------------------------
    def _shadow(self, req: dict, primary_results: list[dict]) -> None:
        self._counts["shadow_sampled"] += 1
        order = [r["id"] for r in primary_results]
        task = asyncio.get_running_loop().create_task(self._compare(req, order), name="rerank-shadow")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _score_shadow(self, req: dict) -> list[str] | str:
        """The candidate's ranking of the request's candidates (ids, best first), or why it was dropped."""
        cands = req["candidates"]
        step = self.shadow_pass_pairs or max(1, len(cands))
        parts = [cands[i:i + step] for i in range(0, len(cands), step)]
        outs = []
        for part in parts:  # one part after another: each waits for the primary to be idle before its pass
            out = await self.candidate.rerank({"id": req.get("id"), "query": req["query"], "candidates": part,
                                               "top_k": None, "deadline_ms": self.shadow_deadline_ms})
            if out.get("degraded"):  # its engine's deadline fallback: not scored in time
                return out.get("reason", "deadline")
            outs.append(out)
        if len(outs) == 1:
            return [r["id"] for r in outs[0]["results"]]
        sent = {c["id"]: i for i, c in enumerate(cands)}
        scored = sorted((r for out in outs for r in out["results"]), key=lambda r: (-r["logit"], sent[r["id"]]))
        return [r["id"] for r in scored]  # as one pass ranks them: by logit, ties in the order sent

    async def _compare(self, req: dict, primary_order: list[str]) -> None:
        try:
            cand_order = await self._score_shadow(req)
        except ServiceBusy:
            return self._dropped("busy")
        except Exception as exc:  # noqa: BLE001 - a failing shadow is counted, never seen by the caller
            self._counts["shadow_failed"] += 1
            self._emit("shadow", outcome="failed", error=type(exc).__name__)
            return None
        if isinstance(cand_order, str):
            return self._dropped(cand_order)
        a = agreement(primary_order, cand_order, self.k, _labels(req["candidates"]))
        self._counts["shadow_compared"] += 1
        self.records.append({"query": req["query"], **a})
        self._emit("shadow", outcome="compared", **a)
        return None

    def _dropped(self, reason: str) -> None:
        self._counts["shadow_dropped"] += 1
        self._emit("shadow", outcome="dropped", reason=reason)

    def _emit(self, event: str, **fields) -> None:
        for fn in self.listeners:
            fn(event, **fields)

    async def drain(self, timeout_s: float = 60.0) -> None:
        """Wait (at most ``timeout_s``) for the shadow comparisons in progress."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the shadow comparisons in progress (within ``timeout_s``), then stop both engines."""
        await self.drain(timeout_s)
        await self.primary.stop(timeout_s)
        await self.candidate.stop(timeout_s)

    def warm_up(self) -> None:
        """Warm up both engines (:meth:`~course_lib.service.core.ScalableRerankingService.warm_up`)."""
        self.primary.warm_up()
        self.candidate.warm_up()

    # -- what it found -----------------------------------------------------------------------
    def report(self) -> dict:
        """Counts, and for a shadow the mean agreement over the comparisons kept (:attr:`records`)."""
        c = dict(self._counts)
        out = {"mode": self.mode, "share": self.share, **self.fingerprints,
               "answered": {"primary": c["answered_primary"], "candidate": c["answered_candidate"]}}
        if self.mode == "canary":
            out["canary_fallbacks"] = c["canary_fallbacks"]
            return out
        recs = list(self.records)

        def mean(key):
            vals = [r[key] for r in recs if key in r]
            return round(sum(vals) / len(vals), 4) if vals else None

        out["shadow"] = {"sampled": c["shadow_sampled"], "compared": c["shadow_compared"],
                         "dropped": c["shadow_dropped"], "failed": c["shadow_failed"],
                         "mean_top_overlap": mean("top_overlap"), "mean_rank_correlation": mean("rank_correlation"),
                         "labelled": sum("ndcg_diff" in r for r in recs), "mean_ndcg_primary": mean("ndcg_primary"),
                         "mean_ndcg_candidate": mean("ndcg_candidate"), "mean_ndcg_diff": mean("ndcg_diff")}
        return out

    def register_metrics(self, registry) -> None:
        """The rollout's Prometheus series, in ``registry`` (see the module's docstring)."""
        from prometheus_client import Counter, Histogram, Summary

        answers = Counter("rerank_model_answers", "Answers by the model that ranked them (fingerprint) and its role",
                          ["model", "role"], registry=registry)
        latency = Histogram("rerank_model_latency_seconds", "Engine time of an answer, by model and role",
                            ["model", "role"], registry=registry,
                            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        fallbacks = Counter("rerank_canary_fallbacks", "Canary requests answered by the primary after the canary failed",
                            ["candidate"], registry=registry)
        shadow = Counter("rerank_shadow_requests", "Shadowed requests by outcome: compared, dropped (queue full or "
                         "not scored in time) or failed", ["candidate", "outcome"], registry=registry)
        overlap = Histogram("rerank_shadow_top_overlap", f"Share of the primary's top {self.k} also in the shadow's",
                            ["candidate"], registry=registry, buckets=tuple(i / 10 for i in range(11)))
        # summaries, not histograms: a histogram with negative buckets exports no _sum, and the mean is the point
        corr = Summary("rerank_shadow_rank_correlation", "Spearman's rho of primary and shadow rankings",
                       ["candidate"], registry=registry)
        ndcg = Summary("rerank_shadow_ndcg_diff", f"NDCG@{self.k} of the shadow minus the primary's (labelled "
                       "requests)", ["candidate"], registry=registry)
        cand = self.candidate.fingerprint
        for outcome in ("compared", "dropped", "failed"):  # series exist from the start (rate() needs them)
            shadow.labels(cand, outcome)
        for family in (overlap, corr, ndcg, fallbacks):
            family.labels(cand)
        for role, engine in (("primary", self.primary), ("candidate", self.candidate)):
            answers.labels(engine.fingerprint, role)

        def on_event(event: str, **f):
            if event == "answered":
                answers.labels(f["model"], f["role"]).inc()
                latency.labels(f["model"], f["role"]).observe(f["seconds"])
            elif event == "canary_fallback":
                fallbacks.labels(cand).inc()
            elif event == "shadow":
                shadow.labels(cand, f["outcome"]).inc()
                if f["outcome"] == "compared":
                    overlap.labels(cand).observe(f["top_overlap"])
                    corr.labels(cand).observe(f["rank_correlation"])
                    if "ndcg_diff" in f:
                        ndcg.labels(cand).observe(f["ndcg_diff"])

        self.listeners.append(on_event)



#: The candidate's scoring passes in shadow mode, in pairs: a shadowed request is split into parts this large
#: (``shadow_pass_pairs``), so a primary request that arrives during a pass shares the cores for less time.
SHADOW_BATCH_PAIRS = 8
#: How many pairs may wait for the shadow at most; beyond it sampled requests are dropped.
SHADOW_QUEUE_PAIRS = 512


def from_config(config, primary: ScalableRerankingService) -> Rollout | None:
    """The :class:`Rollout` a :class:`~course_lib.service.config.ServiceConfig` asks for (``--shadow`` or
    ``--canary``) around ``primary``, its candidate loaded from the path given; None when it asks for none.  A
    shadow scores in short passes (:data:`SHADOW_BATCH_PAIRS`, one part of a request each) on a small queue
    (:data:`SHADOW_QUEUE_PAIRS`); a canary's engine is configured like the primary's."""
    plan = config.rollout_plan()
    if plan is None:
        return None
    mode, model, share = plan
    kwargs = config.engine_kwargs()
    if mode == "shadow":
        kwargs.update(max_batch_pairs=min(SHADOW_BATCH_PAIRS, kwargs["max_batch_pairs"]),
                      max_queue_pairs=min(SHADOW_QUEUE_PAIRS, kwargs["max_queue_pairs"]), default_deadline_ms=None)
    return Rollout(primary, ScalableRerankingService(model, **kwargs), mode=mode, share=share,
                   shadow_pass_pairs=SHADOW_BATCH_PAIRS if mode == "shadow" else None)
