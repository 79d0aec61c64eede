"""Real HTTP: ``course-lib serve`` (uvicorn) in a subprocess on a free loopback port."""
import asyncio
import os
import subprocess
import sys

import httpx
import numpy as np
import pytest

from course_lib.service.server import ServerProcess, is_loopback, resolve_api_key


def test_loopback_only_without_a_key(monkeypatch):
    monkeypatch.delenv("COURSE_API_KEY", raising=False)
    assert resolve_api_key("127.0.0.1", None) is None
    with pytest.raises(ValueError, match="API key"):
        resolve_api_key("0.0.0.0", None)
    assert resolve_api_key("0.0.0.0", "k") == "k"
    monkeypatch.setenv("COURSE_API_KEY", "from-env")
    assert resolve_api_key("192.0.2.1", None) == "from-env"
    assert is_loopback("::1") and not is_loopback("example.org")


def test_serve_refuses_a_public_address_without_a_key():
    env = {k: v for k, v in os.environ.items() if k != "COURSE_API_KEY"}
    out = subprocess.run([sys.executable, "-m", "course_lib.cli", "serve", "--host", "0.0.0.0"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "API key" in out.stderr


@pytest.mark.slow
def test_concurrent_clients_over_http_get_their_own_scores_and_the_server_stops_cleanly(course_scorer, course_ds):
    qids = sorted(course_ds.queries)[:6]
    docs = sorted(course_ds.corpus)[:8]  # the same passages for every query
    bodies = [{"query": course_ds.queries[q], "top_k": None,
               "candidates": [{"id": d, "text": course_ds.doc_text(d)} for d in docs]} for q in qids]

    async def burst(url):
        async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as c:
            return await asyncio.gather(*(c.post("/rerank", json=b) for b in bodies))

    with ServerProcess(["--max-wait-ms", "20"]) as srv:
        replies = asyncio.run(burst(srv.url))
        metrics = httpx.get(srv.url + "/metrics", trust_env=False).text
        bad = httpx.post(srv.url + "/rerank", json={"query": ""}, trust_env=False)
        found = httpx.post(srv.url + "/search", json={"query": "How do bees make honey?", "k": 20, "m": 3},
                           timeout=300, trust_env=False)  # dense top 20 from a persisted Chroma store, reranked
    assert srv.proc.returncode == 0  # SIGINT: graceful shutdown
    assert bad.status_code == 422
    assert found.status_code == 200 and len(found.json()["results"]) == 3
    assert found.json()["results"][0]["id"] in {"gen-06a1", "gen-06a2", "gen-06b1"}  # judged relevant to q06
    for body, r in zip(bodies, replies):
        assert r.status_code == 200
        got = {x["id"]: x["logit"] for x in r.json()["results"]}
        direct = course_scorer.score(body["query"], [c["text"] for c in body["candidates"]])
        assert np.allclose([got[c["id"]] for c in body["candidates"]], direct, atol=1e-4)
    passes = next(float(l.split()[1]) for l in metrics.splitlines() if l.startswith("rerank_batch_pairs_count"))
    assert passes < len(bodies)  # merged: fewer model passes than requests


@pytest.mark.slow
def test_in_flight_requests_finish_when_the_server_is_stopped():
    body = {"query": "how do vaccines work", "candidates": [{"id": str(i), "text": f"vaccines train immunity {i}"} for i in range(60)]}
    with ServerProcess(["--no-batching", "--cache-size", "0"]) as srv:
        async def go():
            async with httpx.AsyncClient(base_url=srv.url, timeout=120, trust_env=False) as c:
                pending = [asyncio.create_task(c.post("/rerank", json=body)) for _ in range(3)]
                await asyncio.sleep(0.5)  # the requests are in the server
                code = await asyncio.to_thread(srv.stop)
                return code, await asyncio.gather(*pending)

        code, replies = asyncio.run(go())
    assert code == 0
    assert [r.status_code for r in replies] == [200, 200, 200]
