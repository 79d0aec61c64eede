"""The HTTP app (course_lib.service.app) through FastAPI's TestClient: validation, limits, keys, busy, metrics."""
import pytest
from fastapi.testclient import TestClient

from course_lib.service import ScalableRerankingService, create_app
from course_lib.service.app import Limits

BODY = {"query": "capital of france", "top_k": 2, "candidates": [
    {"id": "a", "text": "paris is the capital of france", "score": 0.2},
    {"id": "b", "text": "bananas are yellow", "score": 0.9},
    {"id": "c", "text": "the capital city", "score": 0.5}]}


@pytest.fixture
def client(overlap_scorer):
    with TestClient(create_app(ScalableRerankingService(scorer=overlap_scorer), limits=Limits(max_candidates=5, max_passage_chars=100, max_body_bytes=5000))) as c:
        yield c


def test_rerank_returns_the_top_k_in_score_order(client):
    r = client.post("/rerank", json=BODY)
    assert r.status_code == 200
    out = r.json()
    assert [x["id"] for x in out["results"]] == ["a", "c"] and out["degraded"] is False
    assert out["results"][0]["original_position"] == 0 and 0 <= out["results"][0]["relevance_score"] <= 1


@pytest.mark.parametrize("body, field", [
    ({"candidates": []}, "query"),
    ({"query": "q", "candidates": [{"id": "a"}]}, "candidates.0.text"),
    ({"query": "q", "candidates": [], "top_k": -1}, "top_k"),
    ({"query": "q", "candidates": [], "top_k": "three"}, "top_k"),
    ({"query": "q", "candidates": [], "deadline_ms": 0}, "deadline_ms"),
    ({"query": "q", "candidates": [], "extra": 1}, "extra"),
])
def test_malformed_requests_are_422_naming_the_field(client, body, field):
    r = client.post("/rerank", json=body)
    assert r.status_code == 422
    assert field in r.json()["message"]


def test_oversized_requests_are_413(client):
    many = {"query": "q", "candidates": [{"id": str(i), "text": "x"} for i in range(6)]}
    assert client.post("/rerank", json=many).status_code == 413
    long = {"query": "q", "candidates": [{"id": "a", "text": "x " * 60}, {"id": "b", "text": "short"}]}
    r = client.post("/rerank", json=long)  # a long passage is cut and reported, not refused
    assert r.status_code == 200 and r.json()["truncated"] == ["a"]
    assert [len(x["text"]) <= 100 for x in r.json()["results"]] == [True, True]
    assert "truncated" not in client.post("/rerank", json=BODY).json()
    big = client.post("/rerank", content=b"{" + b" " * 6000 + b"}", headers={"content-type": "application/json"})
    assert big.status_code == 413 and "body" in big.json()["message"]


@pytest.mark.parametrize("public_ops", [False, True])
def test_api_key_is_checked_on_every_endpoint(overlap_scorer, course_ds, public_ops):
    from course_lib.retrieval import BM25Retriever

    app = create_app(ScalableRerankingService(scorer=overlap_scorer), search=BM25Retriever(course_ds.corpus),
                     api_key="k3y", public_ops=public_ops)
    docs = {"query": "q", "documents": ["a"]}
    ops = [("get", "/health"), ("get", "/ready"), ("get", "/metrics")]
    with TestClient(app) as c:
        scoring = [("post", "/rerank", BODY), ("post", "/search", BODY), ("post", "/v1/rerank", docs),
                   ("post", "/v2/rerank", docs), ("post", "/rerank", {"query": "q", "texts": ["a"]})]
        for method, path, *body in scoring + ([] if public_ops else ops):
            r = getattr(c, method)(path, **({"json": body[0]} if body else {}))
            assert r.status_code == 401 and "API key" in r.json()["message"], path
        for method, path in ops if public_ops else []:  # load balancers and scrapers send no key
            assert getattr(c, method)(path).status_code == 200
        assert c.post("/rerank", json=BODY, headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.post("/rerank", json=BODY, headers={"X-API-Key": "k3y"}).status_code == 200
        assert c.post("/v2/rerank", json=docs, headers={"Authorization": "Bearer k3y"}).status_code == 200
        assert c.get("/health", headers={"Authorization": "Bearer k3y"}).status_code == 200


def test_a_full_queue_is_503_with_retry_after(overlap_scorer):
    import asyncio
    import time

    import httpx

    from course_lib.scorers.base import Scorer

    class Slow(Scorer):
        def score_pairs(self, pairs):
            time.sleep(0.3)
            return overlap_scorer.score_pairs(pairs)

    app = create_app(ScalableRerankingService(scorer=Slow(), max_queue_pairs=4, cache_size=0), warm_up=False)

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            first = asyncio.create_task(c.post("/rerank", json=BODY))      # taken by the worker, scoring
            await asyncio.sleep(0.1)
            second = asyncio.create_task(c.post("/rerank", json=BODY))     # waits in the queue: 3 of 4 pairs
            await asyncio.sleep(0.1)
            third = await c.post("/rerank", json=BODY)                     # 3 more would exceed 4
            return await first, await second, third

    first, second, third = asyncio.run(go())
    assert first.status_code == second.status_code == 200
    assert third.status_code == 503 and int(third.headers["retry-after"]) >= 1 and "queue full" in third.json()["message"]


def test_more_candidates_than_the_queue_holds_is_413(overlap_scorer):
    many = {"query": "q", "candidates": [{"id": str(i), "text": f"text {i}"} for i in range(5)]}
    with TestClient(create_app(ScalableRerankingService(scorer=overlap_scorer, max_queue_pairs=4))) as c:
        r = c.post("/rerank", json=many)
    assert r.status_code == 413 and "capacity" in r.json()["message"]


def test_metrics_counters_move(client):
    from course_lib.service.loadtest import read_metric

    def value(name):  # summed over labels
        return read_metric(client.get("/metrics").text, name)

    assert client.get("/health").json()["status"] == "ok"
    client.post("/rerank", json=BODY)
    client.post("/rerank", json=BODY)
    client.post("/rerank", json={"query": "q"})
    text = client.get("/metrics").text
    assert 'rerank_http_requests_total{endpoint="/rerank",status="200"} 2.0' in text
    assert 'rerank_http_requests_total{endpoint="/rerank",status="422"} 1.0' in text
    assert value("rerank_cache_hits_total") == 3 and value("rerank_cache_misses_total") == 3
    assert value("rerank_batch_pairs_count") == 1 and value("rerank_queue_pairs") == 0  # the repeat needed no model pass
    assert value("rerank_http_latency_seconds_count") >= 3


def test_search_is_two_stage_over_a_first_stage(overlap_scorer, course_ds):
    from course_lib.retrieval import BM25Retriever

    app = create_app(ScalableRerankingService(scorer=overlap_scorer), search=BM25Retriever(course_ds.corpus))
    with TestClient(app) as c:
        r = c.post("/search", json={"query": "what is the capital of france", "k": 10, "m": 3})
    assert r.status_code == 200
    res = r.json()["results"]
    assert len(res) == 3 and all("score" in x and "relevance_score" in x for x in res)
    with TestClient(create_app(ScalableRerankingService(scorer=overlap_scorer), warm_up=False)) as c:
        assert c.post("/search", json={"query": "q"}).status_code == 404  # an app given no first stage has no /search
