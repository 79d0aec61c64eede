"""Financial compliance: jurisdiction filters, document-type priors and recency.

Following the course's ``ComplianceRerankingSystem``: filter by jurisdiction, prefer the
requested document type, add regulatory context to the query, rerank with a strict
threshold, and prefer recent rules.  Document-type and recency preferences are applied as
small, documented additive adjustments to the *probability* (never to raw logits), and the
final order is by the adjusted score with the model's own score kept alongside.

Example
-------
>>> from course_lib.domains.compliance import ComplianceRerankingSystem
>>> ComplianceRerankingSystem.add_regulatory_context("record retention", "EU", "regulation")
'record retention (jurisdiction: EU; document type: regulation)'
"""

from __future__ import annotations

from datetime import date

from course_lib.domains.common import check_ranker, meta as _meta, rerank_pool, validate_domain_query
from course_lib.rerank import AdvancedReranker, Ranker


class ComplianceRerankingSystem:
    """Rerank regulatory passages for a jurisdiction and a document type.

    Args:
        reranker: a :class:`~course_lib.rerank.Ranker` (None = an :class:`AdvancedReranker` on
            the course reranker).
        threshold: probability threshold (compliance wants few, trustworthy results).
        type_bonus: added to the probability of passages of the requested document type.
        recency_bonus: up to this much added for a rule effective this year, decaying linearly
            to 0 over ``recency_years``.
    """

    def __init__(self, reranker: Ranker | None = None, threshold: float = 0.6,
                 type_bonus: float = 0.05, recency_bonus: float = 0.05, recency_years: int = 10, today: date | None = None):
        self.reranker = check_ranker(reranker) if reranker is not None else AdvancedReranker()
        self.threshold = threshold
        self.type_bonus = type_bonus
        self.recency_bonus = recency_bonus
        self.recency_years = recency_years
        self.today = today or date.today()

    @staticmethod
    def filter_by_jurisdiction(candidates: list[dict], jurisdiction: str | None) -> list[dict]:
        """Keep passages of that jurisdiction, or with none recorded ("global"); None keeps all."""
        return [candidates[i] for i in ComplianceRerankingSystem.jurisdiction_matches(candidates, jurisdiction)]

    @staticmethod
    def jurisdiction_matches(candidates: list[dict], jurisdiction: str | None) -> list[int]:
        """Positions of the candidates :meth:`filter_by_jurisdiction` keeps."""
        if jurisdiction is not None and not isinstance(jurisdiction, str):
            raise TypeError(f"jurisdiction must be a string or None, got {type(jurisdiction).__name__}")
        if not jurisdiction:
            return list(range(len(candidates)))
        j = jurisdiction.lower()
        return [i for i, c in enumerate(candidates) if str(_meta(c, "jurisdiction") or "global").lower() in {j, "global"}]

    @staticmethod
    def add_regulatory_context(query: str, jurisdiction: str | None, document_type: str | None) -> str:
        ctx = []
        if jurisdiction:
            ctx.append(f"jurisdiction: {jurisdiction}")
        if document_type:
            ctx.append(f"document type: {document_type}")
        return f"{query} ({'; '.join(ctx)})" if ctx else query

    def _recency(self, c: dict) -> float:
        eff = _meta(c, "effective_date")
        if not eff:
            return 0.0
        try:
            year = int(str(eff)[:4])
        except ValueError:
            return 0.0
        age = max(0, self.today.year - year)
        return self.recency_bonus * max(0.0, 1.0 - age / self.recency_years)

    def rerank_compliance_query(self, query: str, jurisdiction: str | None, document_type: str | None,
                                candidates: list[dict], top_k: int = 10) -> list[dict]:
        """Filter, rerank (probability threshold), then order by the adjusted score.

        Each result keeps ``relevance_score`` (the model's probability) and adds
        ``compliance_score`` (with document-type and recency adjustments) and ``jurisdiction_ok``.
        An empty filtered list returns ``[]``; ``original_position`` indexes the caller's list.
        The query must hold text of its own (context appended to an empty query is no question).
        """
        validate_domain_query(query, candidates, top_k)
        if document_type is not None and not isinstance(document_type, str):
            raise TypeError(f"document_type must be a string or None, got {type(document_type).__name__}")
        keep = self.jurisdiction_matches(candidates, jurisdiction)
        enhanced = self.add_regulatory_context(query, jurisdiction, document_type)
        ranked = rerank_pool(self.reranker, enhanced, candidates, keep, self.threshold)
        if not ranked:
            return []
        out = []
        for r in ranked:
            bonus = self.type_bonus if document_type and str(_meta(r, "document_type") or "").lower() == document_type.lower() else 0.0
            out.append({**r, "compliance_score": r["relevance_score"] + bonus + self._recency(r), "jurisdiction_ok": True})
        out.sort(key=lambda r: (-r["compliance_score"], r["original_position"]))
        return out[:top_k]
