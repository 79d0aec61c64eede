"""Shadow and canary (course_lib.service.rollout): what answers, what is compared, what is dropped, what the
metrics say — on toy models, then ``course-lib serve --shadow`` with the real course reranker and its distilled
tier on loopback."""
import asyncio
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from course_lib.scorers.base import Scorer
from course_lib.service import DelayedScorer, ScalableRerankingService, create_app
from course_lib.service.config import ServiceConfig
from course_lib.service.loadtest import read_metric
from course_lib.service.rollout import Rollout, agreement, from_config, ndcg_at, sampled

QUERY = "capital of france"
CANDS = [{"id": "b", "text": "bananas are yellow"}, {"id": "p", "text": "paris is the capital of france"},
         {"id": "c", "text": "the capital of a city"}, {"id": "f", "text": "france"}]


class Reversed(Scorer):
    """The overlap scorer's order turned around: a candidate that disagrees completely."""

    def __init__(self, inner, fp="reversed-v1"):
        self.inner, self.fp = inner, fp

    def score_pairs(self, pairs):
        return -np.asarray(self.inner.score_pairs(pairs))

    def fingerprint(self):
        return self.fp


class Failing(Scorer):
    def score_pairs(self, pairs):
        raise RuntimeError("the candidate broke")

    def fingerprint(self):
        return "failing-v1"


def engine(scorer, **kw):
    return ScalableRerankingService(scorer=scorer, cache_size=0, **kw)


def request(query=QUERY, top_k=2, labels=None):
    cands = [dict(c) for c in CANDS]
    for c in cands:
        if labels and c["id"] in labels:
            c["label"] = labels[c["id"]]
    return {"query": query, "top_k": top_k, "candidates": cands}


# -- the pieces --------------------------------------------------------------------------------------
def test_sampling_is_a_function_of_the_query_and_tends_to_the_share():
    assert all(sampled(f"q{i}", 0.3) == sampled(f"q{i}", 0.3) for i in range(100))
    share = np.mean([sampled(f"question number {i}", 0.05) for i in range(20_000)])
    assert abs(share - 0.05) < 0.006
    assert [sampled(f"q{i}", 0.5, salt="a") for i in range(50)] != [sampled(f"q{i}", 0.5, salt="b") for i in range(50)]
    with pytest.raises(ValueError, match="share"):
        sampled("q", 1.5)


def test_agreement_overlap_correlation_and_ndcg():
    same = agreement(list("abcd"), list("abcd"), k=2, labels={"a": 1})
    assert same == {"top_overlap": 1.0, "rank_correlation": 1.0, "ndcg_primary": 1.0, "ndcg_candidate": 1.0, "ndcg_diff": 0.0}
    flipped = agreement(list("abcd"), list("dcba"), k=2, labels={"a": 3, "d": 1})
    assert flipped["top_overlap"] == 0.0 and flipped["rank_correlation"] == -1.0
    ideal = 3 + 1 / np.log2(3)
    assert flipped["ndcg_primary"] == pytest.approx(3 / ideal) and flipped["ndcg_candidate"] == pytest.approx(1 / ideal)
    assert "ndcg_diff" not in agreement(list("ab"), list("ab"), labels={"a": 0})  # no positive label: no NDCG
    with pytest.raises(ValueError, match="same candidates"):
        agreement(["a", "b"], ["a", "c"])
    assert ndcg_at(["x", "y"], {"y": 2, "z": 2}, k=2) == pytest.approx((2 / np.log2(3)) / (2 + 2 / np.log2(3)))


def test_rollout_refuses_bad_settings(overlap_scorer):
    p = engine(overlap_scorer)
    with pytest.raises(ValueError, match="mode"):
        Rollout(p, engine(overlap_scorer), mode="blue-green")
    with pytest.raises(ValueError, match="share"):
        Rollout(p, engine(overlap_scorer), share=-0.1)
    with pytest.raises(ValueError, match="engine of its own"):
        Rollout(p, p)


# -- shadow ------------------------------------------------------------------------------------------
def test_shadow_answers_with_the_primary_and_records_the_disagreement(overlap_scorer):
    primary = engine(overlap_scorer)
    rollout = Rollout(primary, engine(Reversed(overlap_scorer)), mode="shadow", share=1.0, k=2)
    alone = asyncio.run(engine(overlap_scorer).rerank(request()))

    async def go():
        out = await rollout.rerank(request(labels={"p": 2, "c": 1}))
        await rollout.drain()
        return out

    out = asyncio.run(go())
    assert [r["id"] for r in out["results"]] == [r["id"] for r in alone["results"]] == ["p", "c"]  # the primary's answer
    assert out["model"] == "overlap-v1" and out["role"] == "primary" and len(out["results"]) == 2
    rep = rollout.report()["shadow"]
    assert rep["sampled"] == rep["compared"] == rep["labelled"] == 1 and rep["dropped"] == 0
    assert rep["mean_top_overlap"] == 0.0 and rep["mean_rank_correlation"] == -1.0  # reversed: no agreement
    assert rep["mean_ndcg_primary"] == 1.0 and rep["mean_ndcg_diff"] == pytest.approx(-1.0)


def test_an_unsampled_request_is_not_shadowed(overlap_scorer):
    cand = DelayedScorer(overlap_scorer, 0.0)
    rollout = Rollout(engine(overlap_scorer), engine(cand), mode="shadow", share=0.0)
    asyncio.run(rollout.rerank(request()))
    assert rollout.report()["shadow"]["sampled"] == 0 and cand.calls == []


def test_the_shadow_never_delays_the_primary_answer(overlap_scorer):
    slow = DelayedScorer(overlap_scorer, delay_s=0.6)
    rollout = Rollout(engine(overlap_scorer), engine(slow), mode="shadow", share=1.0)

    async def go():
        t0 = time.perf_counter()
        answers = [await rollout.rerank(request(query=f"capital of france {i}")) for i in range(3)]
        answered_s = time.perf_counter() - t0
        pending = rollout.report()["shadow"]["compared"]
        await rollout.drain()
        return answers, answered_s, pending

    answers, answered_s, pending = asyncio.run(go())
    assert answered_s < 0.3 and pending == 0  # three answers before the shadow's first 0.6 s pass ended
    assert all(a["model"] == "overlap-v1" for a in answers)
    assert rollout.report()["shadow"]["compared"] == 3


def test_the_shadow_gives_way_while_the_primary_has_work(overlap_scorer):
    primary = engine(DelayedScorer(overlap_scorer, delay_s=0.05))
    seen = []

    class Watching(Scorer):  # records how busy the primary was when each shadow pass started
        def score_pairs(self, pairs):
            seen.append(primary.queued_pairs + primary.in_flight_pairs)
            return overlap_scorer.score_pairs(pairs)

        def fingerprint(self):
            return "watching-v1"

    rollout = Rollout(primary, engine(Watching()), mode="shadow", share=1.0)

    async def go():
        await asyncio.gather(*(rollout.rerank(request(query=f"q {i} capital")) for i in range(8)))
        await rollout.drain()

    asyncio.run(go())
    assert len(seen) >= 1 and seen == [0] * len(seen)
    assert rollout.report()["shadow"]["compared"] == 8


def test_the_shadow_drops_what_its_queue_cannot_hold_and_counts_it(overlap_scorer):
    slow = DelayedScorer(overlap_scorer, delay_s=0.3)
    rollout = Rollout(engine(overlap_scorer), engine(slow, max_queue_pairs=4), mode="shadow", share=1.0)

    async def go():
        answers = await asyncio.gather(*(rollout.rerank(request(query=f"capital {i}")) for i in range(5)))
        await rollout.drain()
        return answers

    answers = asyncio.run(go())
    assert all(a["results"] and not a["degraded"] for a in answers)  # every caller answered by the primary
    rep = rollout.report()["shadow"]
    assert rep["sampled"] == 5 and rep["dropped"] >= 3 and rep["compared"] + rep["dropped"] == 5


def test_a_shadow_past_its_deadline_is_dropped(overlap_scorer):
    rollout = Rollout(engine(overlap_scorer), engine(DelayedScorer(overlap_scorer, delay_s=0.5)), mode="shadow",
                      share=1.0, shadow_deadline_ms=100)

    async def go():
        await rollout.rerank(request())
        await rollout.drain()

    asyncio.run(go())
    rep = rollout.report()["shadow"]
    assert rep["dropped"] == 1 and rep["compared"] == 0


# -- canary ------------------------------------------------------------------------------------------
def test_the_canary_answers_its_share_labelled_by_fingerprint(overlap_scorer):
    rollout = Rollout(engine(overlap_scorer), engine(Reversed(overlap_scorer)), mode="canary", share=0.5)
    queries = [f"capital of france, question {i}" for i in range(40)]

    async def go():
        return await asyncio.gather(*(rollout.rerank(request(q)) for q in queries))

    answers = asyncio.run(go())
    for q, a in zip(queries, answers):
        by_candidate = sampled(q, 0.5)
        assert a["model"] == ("reversed-v1" if by_candidate else "overlap-v1")
        assert a["role"] == ("candidate" if by_candidate else "primary")
        assert a["results"][0]["id"] == ("b" if by_candidate else "p")  # the candidate's own ranking
    rep = rollout.report()
    assert rep["answered"]["candidate"] == sum(sampled(q, 0.5) for q in queries) > 0 and rep["canary_fallbacks"] == 0


def test_a_failing_canary_is_answered_by_the_primary(overlap_scorer):
    rollout = Rollout(engine(overlap_scorer), engine(Failing()), mode="canary", share=1.0)
    out = asyncio.run(rollout.rerank(request()))
    assert out["model"] == "overlap-v1" and out["results"][0]["id"] == "p"
    assert rollout.report()["canary_fallbacks"] == 1


# -- over HTTP ---------------------------------------------------------------------------------------
def test_the_app_labels_answers_and_exports_the_rollout_series(overlap_scorer):
    rollout = Rollout(engine(overlap_scorer), engine(Reversed(overlap_scorer)), mode="shadow", share=1.0, k=2)
    with TestClient(create_app(rollout=rollout)) as client:
        r = client.post("/rerank", json=request(labels={"p": 2}))
        assert r.status_code == 200 and r.json()["model"] == "overlap-v1" and r.headers["x-rerank-model"] == "overlap-v1"
        v1 = client.post("/v1/rerank", json={"query": QUERY, "documents": [c["text"] for c in CANDS]})
        assert v1.status_code == 200 and v1.headers["x-rerank-model"] == "overlap-v1"
        health = client.get("/health").json()
        assert health["rollout"]["mode"] == "shadow" and health["rollout"]["candidate"] == "reversed-v1"
        deadline = time.monotonic() + 10
        while rollout.report()["shadow"]["compared"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = client.get("/metrics").text
    assert read_metric(metrics, 'rerank_shadow_requests_total{candidate="reversed-v1",outcome="compared"}') == 2.0
    assert read_metric(metrics, 'rerank_shadow_requests_total{candidate="reversed-v1",outcome="dropped"}') == 0.0
    assert read_metric(metrics, 'rerank_shadow_top_overlap_count{candidate="reversed-v1"}') == 2.0
    assert read_metric(metrics, 'rerank_shadow_ndcg_diff_count{candidate="reversed-v1"}') == 1.0  # one labelled
    assert read_metric(metrics, 'rerank_shadow_ndcg_diff_sum{candidate="reversed-v1"}') == pytest.approx(-1.0)
    assert read_metric(metrics, 'rerank_model_answers_total{model="overlap-v1",role="primary"}') == 2.0


def test_a_service_without_a_rollout_still_names_its_model(overlap_scorer):
    with TestClient(create_app(engine(overlap_scorer))) as client:
        r = client.post("/rerank", json=request())
    assert r.json()["model"] == "overlap-v1" and "role" not in r.json() and r.headers["x-rerank-model"] == "overlap-v1"


def test_config_builds_a_shadow_that_gives_way_and_refuses_two_candidates(overlap_scorer):
    with pytest.raises(ValueError, match="not both"):
        ServiceConfig(shadow="a", canary="b")
    with pytest.raises(ValueError, match="shadow_rate"):
        ServiceConfig(shadow="a", shadow_rate=2.0)
    assert from_config(ServiceConfig(), engine(overlap_scorer)) is None


@pytest.mark.slow
def test_course_lib_serve_with_a_shadow_and_with_a_canary_on_loopback():
    """The real command with the course reranker as primary and its distilled tier as the candidate."""
    import httpx

    from course_lib.optimize.levers import small_reranker_path
    from course_lib.service.server import ServerProcess

    small = small_reranker_path()
    if small is None:
        pytest.skip("the distilled reranker is not on this machine")
    body = request(top_k=3)
    with ServerProcess(["--shadow", str(small), "--shadow-rate", "1.0"]) as srv:
        r = httpx.post(srv.url + "/rerank", json=body, timeout=60, trust_env=False)
        assert r.status_code == 200 and r.json()["role"] == "primary"
        primary_fp = r.json()["model"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            metrics = httpx.get(srv.url + "/metrics", timeout=10, trust_env=False).text
            if read_metric(metrics, "rerank_shadow_top_overlap_count") >= 1:
                break
            time.sleep(0.2)
        assert read_metric(metrics, "rerank_shadow_top_overlap_count") == 1.0
        assert httpx.get(srv.url + "/health", trust_env=False).json()["rollout"]["mode"] == "shadow"
    with ServerProcess(["--canary", str(small), "--canary-share", "1.0"]) as srv:
        r = httpx.post(srv.url + "/rerank", json=body, timeout=60, trust_env=False)
        assert r.status_code == 200 and r.json()["role"] == "candidate" and r.json()["model"] != primary_fp
        assert r.headers["x-rerank-model"] == r.json()["model"]


def test_a_shadow_split_into_short_passes_ranks_as_one_pass_would(overlap_scorer):
    class Counting(Scorer):
        passes = []

        def score_pairs(self, pairs):
            Counting.passes.append(len(pairs))
            return -np.asarray(overlap_scorer.score_pairs(pairs))

        def fingerprint(self):
            return "counting-v1"

    whole = Rollout(engine(overlap_scorer), engine(Reversed(overlap_scorer)), mode="shadow", share=1.0, k=2)
    split = Rollout(engine(overlap_scorer), engine(Counting(), max_batch_pairs=1), mode="shadow", share=1.0, k=2,
                    shadow_pass_pairs=1)

    async def go(rollout):
        await rollout.rerank(request(labels={"p": 2, "c": 1}))
        await rollout.drain()
        return rollout.records[-1]

    assert asyncio.run(go(split)) == asyncio.run(go(whole))  # same ranking, so the same agreement
    assert Counting.passes == [1, 1, 1, 1]  # four candidates, four passes of one pair
    with pytest.raises(ValueError, match="shadow_pass_pairs"):
        Rollout(engine(overlap_scorer), engine(overlap_scorer), shadow_pass_pairs=0)


def test_from_config_gives_the_shadow_short_passes_and_a_small_queue(overlap_scorer, monkeypatch):
    import course_lib.service.rollout as rollout_mod

    built = {}

    class Recording(ScalableRerankingService):
        def __init__(self, model, **kw):
            built.update(model=model, **kw)
            super().__init__(scorer=overlap_scorer, **kw)

    monkeypatch.setattr(rollout_mod, "ScalableRerankingService", Recording)
    primary = engine(overlap_scorer)
    r = from_config(ServiceConfig(shadow="runs/new", shadow_rate=0.2), primary)
    assert (r.mode, r.share, r.shadow_pass_pairs, r.candidate.yield_to) == ("shadow", 0.2, 8, primary)
    assert built["model"] == "runs/new" and built["max_batch_pairs"] == 8 and built["max_queue_pairs"] == 512
    c = from_config(ServiceConfig(canary="runs/new"), primary)
    assert (c.mode, c.share, c.shadow_pass_pairs, c.candidate.yield_to) == ("canary", 0.05, None, None)
