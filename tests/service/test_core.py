import asyncio

from course_lib.service import ScalableRerankingService


def test_service_batches_dedupes_and_keeps_requests_apart(overlap_scorer):
    svc = ScalableRerankingService(scorer=overlap_scorer)
    reqs = [
        {"id": "r1", "query": "capital of france", "top_k": 2, "candidates": [
            {"id": "a", "text": "paris is the capital of france"}, {"id": "b", "text": "bananas"}, {"id": "c", "text": "capital city"}]},
        {"id": "r2", "query": "capital of france", "candidates": [{"id": "z", "text": "bananas"}]},
        {"id": "r3", "query": "", "candidates": []},
        {"id": "r4", "query": "q", "candidates": [{"text": "no id"}]},
    ]
    out = asyncio.run(svc.process_batch_requests(reqs))
    assert [o["request_id"] for o in out] == ["r1", "r2", "r3", "r4"]
    assert [r["id"] for r in out[0]["results"]] == ["a", "c"]
    assert [r["id"] for r in out[1]["results"]] == ["z"]  # only its own candidate
    assert "error" in out[2] and "id" in out[3]["error"]
    assert svc.stats["pairs_scored"] == 3  # 'bananas' scored once for both requests
    again = asyncio.run(svc.process_batch_requests(reqs[:2]))
    assert svc.stats["pairs_scored"] == 3 and again[0] == out[0]


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_a_bad_top_k_is_that_requests_error_and_the_batch_still_runs(overlap_scorer):
    svc = ScalableRerankingService(scorer=overlap_scorer)
    cands = [{"id": "a", "text": "paris is the capital of france"}, {"id": "b", "text": "bananas"},
             {"id": "c", "text": "capital city"}]
    reqs = [
        {"id": "ok", "query": "capital of france", "top_k": 2, "candidates": cands},
        {"id": "str", "query": "capital of france", "top_k": "3", "candidates": cands},
        {"id": "neg", "query": "capital of france", "top_k": -2, "candidates": cands},
        {"id": "bool", "query": "capital of france", "top_k": True, "candidates": cands},
        {"id": "default", "query": "capital city", "candidates": cands[1:]},
    ]
    out = asyncio.run(svc.process_batch_requests(reqs))
    assert [o["request_id"] for o in out] == ["ok", "str", "neg", "bool", "default"]
    for o in out[1:4]:
        assert "error" in o and "results" not in o and "top_k" in o["error"], o
    assert [r["id"] for r in out[0]["results"]] == ["a", "c"]
    assert [r["id"] for r in out[4]["results"]] == ["c", "b"]
    assert svc.stats["pairs_scored"] == 5  # only the valid requests' pairs


# --- micro-batching, deadlines, back-pressure (course_lib.service.core) ------------------------
import time  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.service import DelayedScorer, RequestError, ServiceBusy, merge_jobs  # noqa: E402


def SlowScorer(base, delay=0.0):
    return DelayedScorer(base, delay_s=delay)


def _req(rid, query, texts, **kw):
    return {"id": rid, "query": query, "candidates": [{"id": f"{rid}-{i}", "text": t} for i, t in enumerate(texts)], **kw}


def test_merge_jobs_dedupes_pairs_and_routes_back():
    pairs, where = merge_jobs([("q", ["a", "b", "a"]), ("r", ["a"]), ("q", []), ("q", ["b"])])
    assert pairs == [("q", "a"), ("q", "b"), ("r", "a")]
    assert where == [[0, 1, 0], [2], [], [1]]


def test_concurrent_callers_are_merged_into_one_pass_and_get_their_own_scores(overlap_scorer):
    slow = SlowScorer(overlap_scorer, delay=0.05)
    svc = ScalableRerankingService(scorer=slow, max_wait_ms=50, cache_size=0)
    texts = ["paris is the capital of france", "bananas are yellow", "capital city of spain"]
    reqs = [_req(f"r{i}", q, texts, top_k=None) for i, q in enumerate(["capital of france", "yellow bananas", "spain capital"] * 3)]

    async def go():
        return await asyncio.gather(*(svc.rerank(r) for r in reqs))

    out = asyncio.run(go())
    assert len(slow.calls) == 1  # nine callers, one model pass
    assert len(slow.calls[0]) == 9  # 27 pairs requested, 9 distinct
    for r, o in zip(reqs, out):
        direct = overlap_scorer.score(r["query"], texts)
        got = {x["id"]: x["logit"] for x in o["results"]}
        assert [got[c["id"]] for c in r["candidates"]] == pytest.approx(direct.tolist())  # never another caller's scores
        assert not o["degraded"]


def test_without_batching_each_request_is_its_own_pass(overlap_scorer):
    slow = SlowScorer(overlap_scorer)
    svc = ScalableRerankingService(scorer=slow, batching=False, cache_size=0)
    reqs = [_req(f"r{i}", "capital", ["capital a", "b"]) for i in range(4)]

    async def go():
        return await asyncio.gather(*(svc.rerank(r) for r in reqs))

    asyncio.run(go())
    assert len(slow.calls) == 4


def test_micro_batched_results_equal_direct_scoring_with_the_real_model(course_scorer, course_ds):
    svc = ScalableRerankingService(scorer=course_scorer, max_wait_ms=20)
    qids = sorted(course_ds.queries)[:4]
    docs = sorted(course_ds.corpus)[:6]
    reqs = [_req(q, course_ds.queries[q], [course_ds.doc_text(d) for d in docs], top_k=None) for q in qids]

    async def go():
        return await asyncio.gather(*(svc.rerank(r) for r in reqs))

    for r, o in zip(reqs, asyncio.run(go())):
        direct = course_scorer.score(r["query"], [c["text"] for c in r["candidates"]])
        got = {x["id"]: x["logit"] for x in o["results"]}
        assert np.allclose([got[c["id"]] for c in r["candidates"]], direct, atol=1e-4)


def test_deadline_gives_the_first_stage_order_flagged_degraded(overlap_scorer):
    svc = ScalableRerankingService(scorer=SlowScorer(overlap_scorer, delay=0.5), cache_size=0)
    cands = [{"id": "x", "text": "bananas", "score": 0.1}, {"id": "y", "text": "capital of france", "score": 0.9},
             {"id": "z", "text": "paris", "score": 0.5}]

    async def go():
        t0 = time.perf_counter()
        out = await svc.rerank({"query": "capital of france", "candidates": cands, "deadline_ms": 50})
        return out, time.perf_counter() - t0

    out, seconds = asyncio.run(go())
    assert out["degraded"] and "deadline" in out["reason"]
    assert [r["id"] for r in out["results"]] == ["y", "z", "x"]  # by first-stage score
    assert all(r["relevance_score"] is None for r in out["results"])
    assert svc.stats["degraded"] == 1
    assert seconds < 0.5  # answered at the deadline, not after the slow pass (behaviour, not a timing benchmark)


def test_a_full_queue_answers_busy_instead_of_growing(overlap_scorer):
    svc = ScalableRerankingService(scorer=SlowScorer(overlap_scorer, delay=0.2), max_queue_pairs=4, cache_size=0)

    async def go():
        first = asyncio.create_task(svc.rerank(_req("a", "q", ["a", "b", "c"])))
        await asyncio.sleep(0)  # queued, not yet taken by the worker
        with pytest.raises(ServiceBusy) as busy:
            await svc.rerank(_req("b", "q", ["d", "e"]))
        return await first, busy.value

    out, busy = asyncio.run(go())
    assert not out["degraded"] and busy.retry_after_s >= 1
    assert svc.stats["busy"] == 1


def test_invalid_requests_raise_request_errors_naming_the_field(overlap_scorer):
    svc = ScalableRerankingService(scorer=overlap_scorer)
    for bad, field in [({"query": "q"}, "candidates"), (_req("a", "q", ["x"], top_k=-1), "top_k"),
                       (_req("a", "q", ["x"], deadline_ms=0), "deadline_ms"), (_req("a", " ", ["x"]), "query")]:
        with pytest.raises(RequestError, match=field):
            asyncio.run(svc.rerank(bad))


def test_stop_finishes_queued_work(overlap_scorer):
    slow = SlowScorer(overlap_scorer, delay=0.05)
    svc = ScalableRerankingService(scorer=slow, batching=False, cache_size=0)

    async def go():
        tasks = [asyncio.create_task(svc.rerank(_req(f"r{i}", "q", ["a"]))) for i in range(3)]
        await asyncio.sleep(0)
        await svc.stop()
        done = await asyncio.gather(*tasks)
        with pytest.raises(ServiceBusy, match="shutting down"):
            await svc.rerank(_req("late", "q", ["a"]))
        return done

    assert all(not o["degraded"] for o in asyncio.run(go()))
    assert len(slow.calls) == 3


def test_cache_is_keyed_by_scorer_fingerprint_query_and_passage(overlap_scorer):
    svc = ScalableRerankingService(scorer=overlap_scorer)
    a = asyncio.run(svc.rerank(_req("a", "capital of france", ["paris capital", "bananas"])))
    b = asyncio.run(svc.rerank(_req("b", "capital of france", ["rome capital", "apples"])))
    assert [r["text"] for r in b["results"]] == ["rome capital", "apples"]  # not request a's answer
    assert svc.stats["cache_hits"] == 0
    asyncio.run(svc.rerank(_req("c", "capital of france", ["paris capital"])))
    assert svc.stats["cache_hits"] == 1
    assert svc.cache.model_id == overlap_scorer.fingerprint()
    assert a["results"][0]["text"] == "paris capital"


def test_a_token_budget_caps_what_one_pass_merges(overlap_scorer):
    """On a GPU a batch's cost follows its tokens: with a token budget, long passages go fewer to a pass."""
    from course_lib.service.core import estimated_tokens

    slow = SlowScorer(overlap_scorer, delay=0.05)
    long_text = "capital of france " * 200  # each pair is read to the scorer's cap (512 tokens here: no max_length)
    svc = ScalableRerankingService(scorer=slow, max_wait_ms=50, cache_size=0, max_batch_tokens=1100)
    assert svc.max_batch_tokens == 1100 and estimated_tokens("q", [long_text], svc.max_length) == svc.max_length
    reqs = [_req(f"r{i}", f"query {i}", [long_text]) for i in range(4)]

    async def go():
        return await asyncio.gather(*(svc.rerank(r) for r in reqs))

    asyncio.run(go())
    assert [len(c) for c in slow.calls] == [3, 1]  # 3 x 512 estimated tokens reach the budget, the fourth waits
    assert ScalableRerankingService(scorer=overlap_scorer).max_batch_tokens is None  # "auto" on a CPU: pairs only
    with pytest.raises(ValueError, match="one full pair"):
        ScalableRerankingService(scorer=overlap_scorer, max_batch_tokens=10)
