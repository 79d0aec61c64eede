from datetime import date

import pytest

from course_lib.domains import ComplianceRerankingSystem
from course_lib.rerank import AdvancedReranker


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


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_regulatory_context_does_not_make_an_empty_query_valid(overlap_scorer):
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0)
    cands = [{"id": "eu", "text": "record retention", "metadata": {"jurisdiction": "EU"}}]
    for query in ("", "   "):
        with pytest.raises(ValueError):
            system.rerank_compliance_query(query, "EU", None, cands)
    assert overlap_scorer.calls == 0


def test_original_position_indexes_the_callers_list_after_jurisdiction_filtering(overlap_scorer):
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, today=date(2026, 1, 1))
    cands = [
        {"id": "us-1", "text": "record retention rules", "metadata": {"jurisdiction": "US"}},
        {"id": "us-2", "text": "record retention", "metadata": {"jurisdiction": "US"}},
        {"id": "eu", "text": "record retention rules five years", "metadata": {"jurisdiction": "EU"}},
        {"id": "uk", "text": "record retention rules", "jurisdiction": "UK"},
        {"id": "global", "text": "retention"},
    ]
    out = system.rerank_compliance_query("record retention rules", "EU", None, cands)
    assert [r["id"] for r in out] == ["eu", "global"]
    assert [r["original_position"] for r in out] == [2, 4]
    assert all(cands[r["original_position"]]["id"] == r["id"] for r in out)
