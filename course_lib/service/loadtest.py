"""A bounded load test for the reranking service — loopback addresses only.

``course-lib loadtest --url http://127.0.0.1:8000 --concurrency 16 --requests 200 --json``
replays course-corpus (or SciFact) queries with their dense first-stage candidates against
``POST /rerank`` from ``concurrency`` concurrent clients, and reports throughput, latency
percentiles, errors, degraded answers and the cache hit rate.  It sends at most ``requests``
requests and stops after ``max_seconds`` whatever happens.  It refuses any address that is
not on this machine (127.0.0.0/8, ::1, localhost).

Example
-------
>>> check_loopback("http://127.0.0.1:8000")
'127.0.0.1'
>>> check_loopback("http://10.0.0.5:8000")
Traceback (most recent call last):
...
ValueError: load tests target this machine only (loopback); got 10.0.0.5
"""

from __future__ import annotations

import asyncio
import random
import time
from urllib.parse import urlparse

import numpy as np
from course_lib.service.config import is_loopback


def check_loopback(url: str) -> str:
    """The URL's host if it is a loopback address, else ``ValueError``."""
    host = urlparse(url).hostname or ""
    if not is_loopback(host):
        raise ValueError(f"load tests target this machine only (loopback); got {host or url}")
    return host


def rerank_request(ds, hits, query_id: str, top_k: int | None = 10) -> dict:
    """A ``/rerank`` body: the query and its first-stage ``hits`` (``[(doc_id, score), ...]``) as candidates."""
    return {"query": ds.queries[query_id], "top_k": top_k,
            "candidates": [{"id": d, "text": ds.doc_text(d), "score": float(s)} for d, s in hits]}


def read_metric(metrics_text: str, name: str) -> float:
    r"""The value of a Prometheus metric in ``/metrics`` text, summed over its labels (0 if absent).

    >>> read_metric('a_total{x="1"} 2.0\na_total{x="2"} 3.0\nb 1.0', "a_total")
    5.0
    """
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


async def send_concurrently(url: str, bodies: list[dict], path: str = "/rerank", headers: dict | None = None,
                            timeout_s: float = 120.0) -> list:
    """POST every body at once (one connection each) to a loopback server; the responses, in order."""
    import httpx

    check_loopback(url)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, trust_env=False, headers=headers or {}) as c:
        return await asyncio.gather(*(c.post(path, json=b) for b in bodies))


def workload(n_requests: int, dataset: str = "course", k: int = 30, repeat_fraction: float = 0.0,
             data_dir=None, seed: int = 0) -> list[dict]:
    """``n_requests`` rerank requests: real queries with their dense top ``k`` as candidates.

    A share ``repeat_fraction`` of them repeats an earlier request exactly (what a pair cache
    serves).  The rest are fresh: they cycle through the collection's queries, and each new cycle
    takes the next ``k`` first-stage candidates (ranks k+1..2k, ...), so no pair repeats until the
    corpus runs out.
    """
    from course_lib.data import load_beir, load_course_corpus
    from course_lib.dense import DenseIndex

    if not 0.0 <= repeat_fraction <= 1.0:
        raise ValueError(f"repeat_fraction must lie in [0, 1], got {repeat_fraction}")
    ds = load_course_corpus() if dataset == "course" else load_beir(dataset, "test", data_dir=data_dir)
    index = DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=False)
    qids = sorted(ds.queries)
    rng = random.Random(seed)
    n_fresh = max(1, round(n_requests * (1.0 - repeat_fraction)))
    cycles = -(-n_fresh // len(qids))
    depth = min(len(ds.corpus), k * cycles)
    ranked = dict(zip(qids, index.search([ds.queries[q] for q in qids], depth)))
    fresh = []
    for i in range(n_fresh):
        q, c = qids[i % len(qids)], i // len(qids)
        start = (c * k) % max(1, depth - k + 1) if depth > k else 0
        fresh.append(rerank_request(ds, ranked[q][start : start + k], q))
    out = list(fresh)
    while len(out) < n_requests:
        out.insert(rng.randrange(1, len(out) + 1), dict(rng.choice(fresh)))
    return out[:n_requests]


async def run_load(url: str, requests: list[dict], concurrency: int = 16, deadline_ms: float | None = None,
                   api_key: str | None = None, max_seconds: float = 120.0, timeout_s: float = 60.0) -> dict:
    """Send ``requests`` to ``url``/rerank from ``concurrency`` workers; returns the summary dict.

    Bodies are encoded before the clock starts and the client is aiohttp, which costs far less CPU
    per request than httpx: on a small machine the load generator shares the cores with the server,
    and every millisecond it spends is one the server does not get.
    """
    import json as _json

    import aiohttp

    check_loopback(url)
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    headers = {"content-type": "application/json", **({"X-API-Key": api_key} if api_key else {})}
    extra = {"deadline_ms": deadline_ms} if deadline_ms is not None else {}
    todo = [(len(r["candidates"]), _json.dumps({**r, **extra}).encode()) for r in requests]
    todo.reverse()  # pop() from the end keeps the workload's order
    n_total = len(todo)
    lat, statuses, degraded, within = [], [], 0, 0
    pairs_done = 0
    stop_at = time.monotonic() + max_seconds
    before = await _cache_counters(url, headers)
    endpoint = f"{url.rstrip('/')}/rerank"

    async def worker(session):
        nonlocal degraded, within, pairs_done
        while todo and time.monotonic() < stop_at:
            n_pairs, body = todo.pop()
            t0 = time.perf_counter()
            try:
                async with session.post(endpoint, data=body, headers=headers) as r:
                    status, raw = r.status, await r.read()
                data = _json.loads(raw) if status == 200 else {}
            except (aiohttp.ClientError, asyncio.TimeoutError):
                status, data = 0, {}
            ms = (time.perf_counter() - t0) * 1000.0
            lat.append(ms)
            statuses.append(status)
            if status == 200:
                degraded += bool(data.get("degraded"))
                pairs_done += 0 if data.get("degraded") else n_pairs
                if deadline_ms is None or ms <= deadline_ms + 50.0:
                    within += 1

    t0 = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    after = await _cache_counters(url, headers)
    hits = after[0] - before[0]
    looked = hits + after[1] - before[1]
    v = np.asarray(lat) if lat else np.zeros(1)
    ok = sum(1 for s in statuses if s == 200)
    return {
        "url": url, "requests": len(statuses), "not_sent": n_total - len(statuses), "concurrency": concurrency,
        "pairs_per_request": round(sum(len(r["candidates"]) for r in requests) / len(requests), 1) if requests else 0,
        "deadline_ms": deadline_ms, "seconds": round(wall, 3),
        "throughput_rps": round(len(statuses) / wall, 2) if wall else None,
        "pairs_per_s": round(pairs_done / wall, 1) if wall else None,
        "p50_ms": round(float(np.percentile(v, 50)), 1), "p95_ms": round(float(np.percentile(v, 95)), 1),
        "p99_ms": round(float(np.percentile(v, 99)), 1),
        "ok": ok, "errors": len(statuses) - ok,
        "status_counts": {str(s): statuses.count(s) for s in sorted(set(statuses))},
        "degraded": degraded, "within_deadline": within,
        "cache_hit_rate": round(hits / looked, 3) if looked else 0.0,
        "latencies_ms": [round(x, 2) for x in lat],
    }


async def _cache_counters(url: str, headers: dict) -> tuple[float, float]:
    """(hits, misses) from the service's /metrics (0, 0 when unavailable)."""
    import aiohttp

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(f"{url.rstrip('/')}/metrics", headers=headers) as r:
                text = await r.text()
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return 0.0, 0.0
    return read_metric(text, "rerank_cache_hits_total"), read_metric(text, "rerank_cache_misses_total")


def offline_pairs_per_s(requests: list[dict], scorer=None, repeats: int = 1) -> float:
    """The model's own throughput on the same pairs, in this process, no HTTP (the baseline for
    the service's overhead)."""
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    scorer = scorer or CrossEncoderScorer()
    pairs = [(r["query"], c["text"]) for r in requests for c in r["candidates"]]
    scorer.score_pairs(pairs[:64])  # warm-up: the first passes of a fresh model are slow (the server warms up too)
    best = float("inf")
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        scorer.score_pairs(pairs)
        best = min(best, time.perf_counter() - t0)
    return len(pairs) / best
