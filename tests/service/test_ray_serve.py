"""Scale-out: the same /rerank API on Ray Serve with 2 replicas, on loopback, answers like the single-process service."""
import asyncio

import httpx
import numpy as np
import pytest


@pytest.mark.slow
def test_two_replicas_answer_like_the_single_process_service(course_scorer, course_ds):
    from course_lib.service import ScalableRerankingService, ray_serve
    from course_lib.service.config import ServiceConfig
    from course_lib.service.server import free_port

    qids = sorted(course_ds.queries)[:6]
    docs = sorted(course_ds.corpus)[:10]
    bodies = [{"id": q, "query": course_ds.queries[q], "top_k": 5,
               "candidates": [{"id": d, "text": course_ds.doc_text(d)} for d in docs]} for q in qids]
    local = asyncio.run(ScalableRerankingService(scorer=course_scorer).process_batch_requests(bodies))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    try:
        ray_serve.start(ServiceConfig(port=port, replicas=2))

        async def burst():
            async with httpx.AsyncClient(base_url=url, timeout=120, trust_env=False) as c:
                return await asyncio.gather(*(c.post("/rerank", json={k: v for k, v in b.items() if k != "id"}) for b in bodies))

        replies = asyncio.run(burst())
        replicas = {httpx.get(url + "/health", trust_env=False).json()["replica"] for _ in range(30)}
        bad = httpx.post(url + "/rerank", json={"query": "q"}, trust_env=False)
    finally:
        ray_serve.stop()
    assert len(replicas) == 2
    assert bad.status_code == 422 and "candidates" in bad.json()["message"]
    for want, got in zip(local, replies):
        assert got.status_code == 200
        res = got.json()["results"]
        assert [r["id"] for r in res] == [r["id"] for r in want["results"]]
        assert np.allclose([r["logit"] for r in res], [r["logit"] for r in want["results"]], atol=1e-4)


def test_the_cluster_entry_point_requires_an_api_key(monkeypatch):
    from course_lib.service import ray_serve

    monkeypatch.delenv("COURSE_API_KEY", raising=False)
    with pytest.raises(RuntimeError, match="COURSE_API_KEY"):
        ray_serve.app  # noqa: B018 - the attribute a Serve config imports
