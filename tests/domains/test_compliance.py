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


# --- jurisdiction hierarchy, superseded versions, bonuses that survive, audit log ------------------

def _rules():
    return [
        {"id": "us", "text": "client money must be segregated daily", "metadata": {"jurisdiction": "US"}},
        {"id": "eu", "text": "client money must be segregated", "metadata": {"jurisdiction": "EU", "effective_date": "2021-01-01"}},
        {"id": "de", "text": "client money segregated", "metadata": {"jurisdiction": "DE", "effective_date": "2024-01-01"}},
        {"id": "de-old", "text": "client money must be segregated daily by banks",
         "metadata": {"jurisdiction": "DE", "effective_date": "2015-01-01", "superseded_date": "2024-01-01"}},
        {"id": "iosco", "text": "client money", "metadata": {"jurisdiction": "global", "document_type": "guidance"}},
    ]


def test_a_parent_jurisdictions_rules_apply_below_it_but_not_the_other_way(overlap_scorer):
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, today=date(2026, 1, 1))
    de = {r["id"] for r in system.rerank_compliance_query("client money segregated", "DE", None, _rules())}
    eu = {r["id"] for r in system.rerank_compliance_query("client money segregated", "EU", None, _rules())}
    assert de == {"eu", "de", "de-old", "iosco"}
    assert eu == {"eu", "iosco"}  # a German rule does not apply EU-wide, a US rule nowhere here


def test_a_superseded_version_is_kept_flagged_and_ranked_after_rules_in_force(overlap_scorer):
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, today=date(2026, 1, 1))
    out = system.rerank_compliance_query("client money must be segregated daily by banks", "DE", None, _rules())
    ids = [r["id"] for r in out]
    assert ids[-1] == "de-old" and out[-1]["superseded"] and not out[-1]["in_force"]  # best match, no longer in force
    assert out[-1]["relevance_score"] == max(r["relevance_score"] for r in out)
    before = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, recency_bonus=0.0,
                                       today=date(2023, 6, 1))
    then = before.rerank_compliance_query("client money must be segregated daily by banks", "DE", None, _rules())
    assert then[0]["id"] == "de-old" and then[0]["in_force"]  # in 2023 it was the rule
    assert then[-1]["id"] == "de" and not then[-1]["in_force"]  # not yet effective then


def test_type_bonus_decides_the_order_after_reranking(overlap_scorer):
    cands = [{"id": "a", "text": "client money rules", "metadata": {"document_type": "policy"}},
             {"id": "b", "text": "client money", "metadata": {"document_type": "rulebook"}}]
    plain = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, recency_bonus=0.0)
    weighted = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, recency_bonus=0.0,
                                         type_weights={"rulebook": 0.5})
    assert [r["id"] for r in plain.rerank_compliance_query("client money rules", None, None, cands)] == ["a", "b"]
    out = weighted.rerank_compliance_query("client money rules", None, None, cands)
    assert [r["id"] for r in out] == ["b", "a"]  # the bonus survives: it is applied after the reranker's sort
    assert out[0]["compliance_score"] == pytest.approx(out[0]["relevance_score"] + 0.5)


def test_an_audited_decision_replays_and_a_changed_passage_is_detected(overlap_scorer, tmp_path):
    from course_lib.domains.compliance import read_audit_log, replay

    log = tmp_path / "audit.jsonl"
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, today=date(2026, 1, 1),
                                       type_weights={"guidance": 0.1}, audit_log=log)
    out = system.rerank_compliance_query("client money segregated", "DE", None, _rules(), top_k=3)
    (record,) = read_audit_log(log)
    assert record["query"] == "client money segregated" and record["filtered_out"] == ["us"]
    assert [r["id"] for r in record["results"]] == [r["id"] for r in out]
    assert record["settings"]["type_weights"] == {"guidance": 0.1}
    same = replay(record, _rules(), AdvancedReranker(scorer=overlap_scorer))
    assert same["same"] and same["order"] == same["recorded_order"]
    edited = _rules()
    edited[2] = {**edited[2], "text": "client money need not be segregated"}
    changed = replay(record, edited, AdvancedReranker(scorer=overlap_scorer))
    assert not changed["same"] and not changed["same_inputs"]


def test_a_rule_not_yet_in_force_earns_no_recency_bonus(overlap_scorer):
    from datetime import date

    from course_lib.domains.compliance import ComplianceRerankingSystem
    from course_lib.rerank import AdvancedReranker

    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), today=date(2026, 1, 1))
    assert system.adjustments({"text": "x", "effective_date": "2027-01-01"}, None)["recency"] == 0.0
    assert system.adjustments({"text": "x", "effective_date": "2025-12-31"}, None)["recency"] > 0.04
