"""The shapes real rerank clients send (course_lib.service.compat): Cohere v1/v2, TEI, Jina, through FastAPI's
TestClient, then the real clients — the ``cohere`` SDK, LangChain's ``CohereRerank``, ``httpx``, ``requests``,
``urllib`` — against ``course-lib serve`` on loopback."""
import asyncio
import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from course_lib.scorers.base import Scorer
from course_lib.service import DelayedScorer, ScalableRerankingService, create_app
from course_lib.service.app import Limits, cut_long_passages
from course_lib.service.loadtest import read_metric

QUERY = "capital of france"
DOCS = ["bananas are yellow", "paris is the capital of france", "the capital city"]


@pytest.fixture
def client(overlap_scorer):
    with TestClient(create_app(ScalableRerankingService(scorer=overlap_scorer), limits=Limits(max_candidates=5))) as c:
        yield c


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_shape_returns_every_document_best_first_when_top_n_is_absent(client, path):
    body = {"model": "rerank-v3.5", "query": QUERY, "documents": DOCS, "max_tokens_per_doc": None, "top_n": None,
            "return_documents": None, "priority": 0, "some_future_field": {"x": 1}}  # nulls and unknown fields: fine
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["index"] for x in out["results"]] == [1, 2, 0]  # every document, best first
    scores = [x["relevance_score"] for x in out["results"]]
    assert scores == sorted(scores, reverse=True) and all(0.0 <= s <= 1.0 for s in scores)
    assert "document" not in out["results"][0] and out["meta"]["api_version"]["version"] == path[2]
    assert out["id"] and "truncated" not in out and "warnings" not in out["meta"]


def test_cohere_top_n_documents_and_rank_fields(client):
    docs = [{"text": "bananas", "id": "b1"}, {"text": "paris is the capital of france", "id": "p1", "year": 2024}]
    out = client.post("/v1/rerank", json={"query": QUERY, "documents": docs, "top_n": 1, "return_documents": True}).json()
    assert out["results"] == [{"index": 1, "relevance_score": out["results"][0]["relevance_score"], "document": docs[1]}]
    structured = [{"title": "Bananas", "body": "yellow fruit"}, {"title": "France", "body": "its capital is paris"}]
    out = client.post("/v1/rerank", json={"query": QUERY, "documents": structured, "rank_fields": ["title", "body"]}).json()
    assert out["results"][0]["index"] == 1


def test_tei_shape_on_rerank(client):
    r = client.post("/rerank", json={"query": QUERY, "texts": DOCS, "raw_scores": True, "return_text": True,
                                     "truncate": None, "truncation_direction": "Right"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out, list) and [x["index"] for x in out] == [1, 2, 0]
    assert out[0] == {"index": 1, "score": 2.0, "text": DOCS[1]}  # raw score: the overlap scorer's logit (3 words - 1)
    probs = client.post("/rerank", json={"query": QUERY, "texts": DOCS}).json()
    assert all(0.0 <= x["score"] <= 1.0 for x in probs) and "text" not in probs[0]


def test_jina_shape_on_rerank_returns_documents_by_default(client):
    out = client.post("/rerank", json={"model": "jina-reranker-v2", "query": QUERY, "documents": DOCS, "top_n": 2}).json()
    assert [x["index"] for x in out["results"]] == [1, 2]
    assert out["results"][0]["document"] == {"text": DOCS[1]} and out["model"] == "jina-reranker-v2"
    assert "document" not in client.post("/rerank", json={"query": QUERY, "documents": DOCS,
                                                          "return_documents": False}).json()["results"][0]


@pytest.mark.parametrize("path, body, field", [
    ("/v2/rerank", {"query": QUERY}, "documents"),
    ("/v2/rerank", {"query": "", "documents": ["a"]}, "query"),
    ("/v2/rerank", {"query": QUERY, "documents": ["a"], "top_n": 0}, "top_n"),
    ("/v1/rerank", {"query": QUERY, "documents": [{"title": "no text"}]}, "body"),
    ("/rerank", {"query": QUERY, "texts": "not a list"}, "texts"),
    ("/rerank", {"query": QUERY, "texts": ["a"], "truncation_direction": "middle"}, "truncation_direction"),
    ("/rerank", {"query": QUERY, "documents": [3]}, "documents"),
    ("/rerank", {"query": QUERY, "candidates": [], "texts": ["a"]}, "texts"),  # the course shape forbids extras
])
def test_malformed_compatible_requests_are_422_naming_the_field(client, path, body, field):
    r = client.post(path, json=body)
    assert r.status_code == 422 and field in r.json()["message"], r.text
    assert "course" not in r.json()["message"].split(":", 1)[1]  # the shape's tag is not shown as a field


def test_too_many_documents_is_413(client):
    r = client.post("/v2/rerank", json={"query": QUERY, "documents": ["x"] * 6})
    assert r.status_code == 413 and "limit" in r.json()["message"]


def test_long_documents_are_cut_to_what_the_model_reads_flagged_and_counted(course_scorer, course_ds):
    long = " ".join(course_ds.doc_text(d) for d in sorted(course_ds.corpus)[:12])  # far past the model's window
    docs = [long, "short passage about honey bees", long[:200]]
    query = "How do bees make honey?"
    with TestClient(create_app(ScalableRerankingService(scorer=course_scorer), model_name="course")) as c:
        out = c.post("/v2/rerank", json={"query": query, "documents": docs}).json()
        assert out["truncated"] == [0] and "1 document(s) truncated" in out["meta"]["warnings"][0]
        by_index = {x["index"]: x for x in out["results"]}
        assert by_index[0]["truncated"] is True and "truncated" not in by_index[1]
        # cut at a token boundary: the score is the whole document's (the model reads only its beginning anyway)
        probs = course_scorer.probabilities(course_scorer.score(query, docs))
        assert np.allclose([by_index[i]["relevance_score"] for i in range(3)], probs, atol=1e-5)
        small = c.post("/v2/rerank", json={"query": query, "documents": docs, "max_tokens_per_doc": 8}).json()
        assert small["truncated"] == [0, 2] and "max_tokens_per_doc=8" in small["meta"]["warnings"][0]
        tei = c.post("/rerank", json={"query": query, "texts": docs})
        assert tei.status_code == 200 and tei.headers["x-truncated-documents"] == "0"
        refused = c.post("/rerank", json={"query": query, "texts": docs, "truncate": False})
        assert refused.status_code == 413 and "truncate is false" in refused.json()["message"]
        course = c.post("/rerank", json={"query": query, "candidates": [{"id": "a", "text": docs[1]}]}).json()
        assert "truncated" not in course  # the course's own shape is unchanged
        assert read_metric(c.get("/metrics").text, "rerank_truncated_documents_total") == 1 + 2 + 1
        # a query past the scorer's 64-token cap: the document is cut where the model stops reading it beside the capped query
        long_query = " ".join(["honey bees collect nectar and make honey in the hive"] * 8)
        out = c.post("/v2/rerank", json={"query": long_query, "documents": docs[:1]}).json()
        whole = course_scorer.probabilities(course_scorer.score(long_query, docs[:1]))
        assert out["truncated"] == [0] and np.allclose(out["results"][0]["relevance_score"], whole, atol=1e-5)
        jina = c.post("/rerank", json={"query": query, "documents": docs}).json()
        tok = course_scorer.tokenizer
        n_q = len(tok(query, add_special_tokens=False)["input_ids"])
        read = [min(course_scorer.max_length, 3 + n_q + len(tok(d, add_special_tokens=False)["input_ids"])) for d in docs]
        assert jina["usage"]["total_tokens"] == sum(read)  # [CLS] query [SEP] passage [SEP], each pair capped
        # TEI's truncation_direction: Left keeps the end of a text, even one past the 8,000-character limit
        tail = "the very last words are these"
        left = c.post("/rerank", json={"query": query, "texts": [long + " " + tail], "truncation_direction": "left"})
        assert left.json()[0]["truncated"] is True
        svc = c.app.state.service
        pre, _ = cut_long_passages(Limits(), [{"id": 0, "text": long + " " + tail}], from_end=True)
        assert svc.fit_to_window(query, [pre[0]["text"]], from_end=True)[0][0].endswith(tail)


def test_a_degraded_answer_keeps_finite_scores_and_says_why(overlap_scorer):
    app = create_app(ScalableRerankingService(scorer=DelayedScorer(overlap_scorer, delay_s=0.5), cache_size=0), warm_up=False)
    with TestClient(app) as c:
        r = c.post("/v2/rerank", json={"query": QUERY, "documents": DOCS, "deadline_ms": 150})
        tei = c.post("/rerank", json={"query": QUERY, "texts": DOCS, "deadline_ms": 150})
    out = r.json()
    assert r.status_code == 200 and r.headers["x-rerank-degraded"] == "true"
    assert [x["index"] for x in out["results"]] == [0, 1, 2]  # the order sent
    assert [x["relevance_score"] for x in out["results"]] == [0.0, 0.0, 0.0]  # finite: float() works on every one
    assert out["meta"]["warnings"][0].startswith("degraded:")
    assert tei.headers["x-rerank-degraded"] == "true" and [x["score"] for x in tei.json()] == [0.0, 0.0, 0.0]


def test_not_ready_until_warm(overlap_scorer):
    import httpx

    app = create_app(ScalableRerankingService(scorer=DelayedScorer(overlap_scorer, delay_s=0.6)), background_warm_up=True)

    async def go():
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
                early = await c.get("/ready"), await c.get("/health"), await c.post("/v2/rerank", json={"query": QUERY, "documents": DOCS})
                while (await c.get("/ready")).status_code != 200:
                    await asyncio.sleep(0.05)
                return early, await c.post("/v2/rerank", json={"query": QUERY, "documents": DOCS})

    (ready, health, scored), later = asyncio.run(go())
    assert ready.status_code == 503 and ready.headers["retry-after"] == "1"
    assert health.status_code == 200 and health.json()["ready"] is False  # alive, not ready
    assert scored.status_code == 503 and "warming up" in scored.json()["message"]
    assert later.status_code == 200


def test_a_failed_warm_up_never_reports_ready(overlap_scorer):
    class Broken(Scorer):
        def score_pairs(self, pairs):
            raise RuntimeError("CUDA out of memory")

    app = create_app(ScalableRerankingService(scorer=Broken()), background_warm_up=True)
    with TestClient(app) as c:
        for _ in range(100):
            if c.app.state.readiness.get("failed"):
                break
            time.sleep(0.02)
        r = c.get("/ready")
    assert r.status_code == 503 and "failed to warm up" in r.json()["message"] and "out of memory" in r.json()["message"]


def test_openapi_lists_every_endpoint_with_examples(client):
    spec = client.get("/openapi.json").json()
    assert {"/rerank", "/v1/rerank", "/v2/rerank", "/health", "/ready", "/metrics"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    for name in ("RerankBody", "CohereBody", "TEIBody", "JinaBody"):
        assert schemas[name].get("examples"), name


# -- real clients against `course-lib serve` on loopback ------------------------------------------------------

KEY = "course-test-key"


@pytest.fixture(scope="module")
def server():
    from course_lib.service.server import ServerProcess

    with ServerProcess(["--max-wait-ms", "5"], env={"COURSE_API_KEY": KEY}) as srv:
        yield srv


def _bees(course_ds, n=6):
    docs = sorted(course_ds.corpus)[:n]
    return course_ds.queries["q06"], docs, [course_ds.doc_text(d) for d in docs]


@pytest.mark.slow
def test_the_cohere_sdk_v1_and_v2_against_the_service(server, course_ds, course_scorer):
    import cohere

    query, _, texts = _bees(course_ds)
    v1 = cohere.Client(api_key=KEY, base_url=server.url, timeout=120).rerank(
        model="course-reranker", query=query, documents=texts, top_n=3, return_documents=True)
    v2 = cohere.ClientV2(api_key=KEY, base_url=server.url, timeout=120).rerank(
        model="course-reranker", query=query, documents=texts, max_tokens_per_doc=None)
    probs = course_scorer.probabilities(course_scorer.score(query, texts))
    assert [r.index for r in v1.results] == list(np.argsort(-probs, kind="stable")[:3])
    assert v1.results[0].document.text == texts[v1.results[0].index]
    assert len(v2.results) == len(texts)  # no top_n: every document
    assert np.allclose([r.relevance_score for r in sorted(v2.results, key=lambda r: r.index)], probs, atol=1e-4)
    with pytest.raises(cohere.errors.UnauthorizedError):
        cohere.ClientV2(api_key="wrong", base_url=server.url).rerank(model="m", query=query, documents=texts)


@pytest.mark.slow
def test_langchains_cohere_reranker_in_a_retriever_pipeline(server, course_ds):
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_cohere import CohereRerank
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    from course_lib.retrieval import BM25Retriever

    bm25 = BM25Retriever(course_ds.corpus)

    class CourseBM25(BaseRetriever):  # any LangChain first stage; Chroma in notebook 07
        def _get_relevant_documents(self, query, *, run_manager=None):
            return [Document(h["text"], id=h["id"], metadata={"id": h["id"]}) for h in bm25.retrieve(query, 20)]

    reranker = CohereRerank(base_url=server.url, cohere_api_key=KEY, model="course-reranker", top_n=3)
    pipeline = ContextualCompressionRetriever(base_compressor=reranker, base_retriever=CourseBM25())
    got = pipeline.invoke(course_ds.queries["q06"])
    assert len(got) == 3 and got[0].metadata["id"] in {"gen-06a1", "gen-06a2", "gen-06b1"}  # judged relevant to q06
    scores = [d.metadata["relevance_score"] for d in got]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_a_tei_shaped_request_with_httpx(server, course_ds):
    import httpx

    query, _, texts = _bees(course_ds)
    r = httpx.post(server.url + "/rerank", json={"query": query, "texts": texts, "return_text": True},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=120, trust_env=False)
    assert r.status_code == 200
    out = r.json()
    assert sorted(x["index"] for x in out) == list(range(len(texts))) and out[0]["text"] == texts[out[0]["index"]]


@pytest.mark.slow
def test_an_oversized_body_is_a_413_that_urllib_requests_and_httpx_all_read(server):
    import urllib.error
    import urllib.request

    import httpx
    import requests

    body = json.dumps({"query": "q", "documents": ["x" * 1000] * 6000}).encode()  # about 6 MB; the limit is 2 MB
    headers = {"Content-Type": "application/json", "X-API-Key": KEY}
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(urllib.request.Request(server.url + "/v2/rerank", data=body, headers=headers), timeout=60)
    assert err.value.code == 413 and "exceeds the limit" in json.loads(err.value.read())["message"]
    r = requests.post(server.url + "/v2/rerank", data=body, headers=headers, timeout=60)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["message"]
    r = httpx.post(server.url + "/v2/rerank", content=body, headers=headers, timeout=60, trust_env=False)
    assert r.status_code == 413 and "exceeds the limit" in r.json()["message"]
    chunked = httpx.post(server.url + "/v2/rerank", content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)]),
                         headers=headers, timeout=60, trust_env=False)  # no Content-Length: counted as it arrives
    assert chunked.status_code == 413
    import socket
    from urllib.parse import urlsplit

    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    with socket.create_connection((host, port), timeout=30) as sock:  # curl's way: headers first, the body only if told
        sock.sendall(f"POST /v2/rerank HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\nX-API-Key: {KEY}\r\n\r\n".encode())
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")  # answered before a byte of the body was sent
    assert httpx.get(server.url + "/health", trust_env=False).status_code == 200  # public on loopback, no key
