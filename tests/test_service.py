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
