import asyncio
import copy
from datetime import date


from course_lib.domains import ComplianceRerankingSystem, MedicalRerankingSystem
from course_lib.caches import CachedScorer, LRUScoreCache
from course_lib.optimize import jaccard, pre_filter
from course_lib.rerank import AdvancedReranker
from course_lib.service import ScalableRerankingService


def test_specialty_detection_uses_whole_words():
    assert MedicalRerankingSystem.detect_specialty("new onset seizure and headache") == "neurology"
    assert MedicalRerankingSystem.detect_specialty("ECG shows arrhythmia") == "cardiology"
    assert MedicalRerankingSystem.detect_specialty("brainstorming session notes") == "general"  # not 'brain'


def test_medical_safety_exclusions_are_reported(overlap_scorer):
    system = MedicalRerankingSystem(AdvancedReranker(scorer=overlap_scorer), thresholds={"general": 0.0, "cardiology": 0.0})
    cands = [
        {"id": "1", "text": "aspirin for heart attack prevention", "contraindications": ["warfarin"]},
        {"id": "2", "text": "statins for heart disease prevention"},
    ]
    before = copy.deepcopy(cands)
    res = system.rerank_medical_query("heart attack prevention", {"medications": ["Warfarin"], "age": 70}, cands)
    assert res.specialty == "cardiology" and "age 70" in res.query
    assert [r["id"] for r in res.results] == ["2"]
    assert res.excluded[0]["id"] == "1" and "warfarin" in res.excluded[0]["excluded_because"]
    assert cands == before


def test_compliance_filters_and_prefers_type_and_recency(overlap_scorer):
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, today=date(2026, 1, 1))
    cands = [
        {"id": "us", "text": "record retention rules five years", "metadata": {"jurisdiction": "US"}},
        {"id": "eu-old", "text": "record retention rules five years", "metadata": {"jurisdiction": "EU", "document_type": "guidance", "effective_date": "2010-01-01"}},
        {"id": "eu-new", "text": "record retention rules five years", "metadata": {"jurisdiction": "EU", "document_type": "regulation", "effective_date": "2024-06-01"}},
        {"id": "global", "text": "record retention"},
    ]
    out = system.rerank_compliance_query("record retention rules", "EU", "regulation", cands)
    ids = [r["id"] for r in out]
    assert "us" not in ids and ids[0] == "eu-new"
    assert all(r["compliance_score"] >= r["relevance_score"] for r in out)
    assert system.rerank_compliance_query("x", "JP", None, [cands[0]]) == []


def test_jaccard_and_prefilter_never_divide_by_zero_or_empty_the_list():
    assert jaccard("", "") == 0.0 and jaccard("a", "") == 0.0
    cands = [{"text": ""}, {"text": "totally unrelated"}, {"text": "query words here"}]
    kept = pre_filter("query words", cands, min_similarity=0.5, min_keep=2)
    assert len(kept) == 2 and kept[-1] is cands[2]
    assert pre_filter("q", [], min_keep=3) == []


def test_cache_is_keyed_on_pair_not_query(overlap_scorer):
    cached = CachedScorer(overlap_scorer, LRUScoreCache(maxsize=3))
    a = cached.score("capital of france", ["paris is the capital of france", "bananas"])
    b = cached.score("capital of france", ["bananas", "capital city"])
    assert a[1] == b[0] and b[1] != a[0]
    assert cached.cache.hits == 1 and len(cached.cache) == 3
    cached.score("other", ["x"])
    assert len(cached.cache) == 3  # LRU eviction


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
