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

from course_lib.rerank import AdvancedReranker


def _meta(c: dict, key: str):
    return c.get(key, (c.get("metadata") or {}).get(key))


class ComplianceRerankingSystem:
    """Rerank regulatory passages for a jurisdiction and a document type.

    Args:
        reranker: an :class:`AdvancedReranker` (None = the course reranker).
        threshold: probability threshold (compliance wants few, trustworthy results).
        type_bonus: added to the probability of passages of the requested document type.
        recency_bonus: up to this much added for a rule effective this year, decaying linearly
            to 0 over ``recency_years``.
    """

    def __init__(self, reranker: AdvancedReranker | None = None, threshold: float = 0.6,
                 type_bonus: float = 0.05, recency_bonus: float = 0.05, recency_years: int = 10, today: date | None = None):
        self.reranker = reranker or AdvancedReranker()
        self.threshold = threshold
        self.type_bonus = type_bonus
        self.recency_bonus = recency_bonus
        self.recency_years = recency_years
        self.today = today or date.today()

    @staticmethod
    def filter_by_jurisdiction(candidates: list[dict], jurisdiction: str | None) -> list[dict]:
        """Keep passages of that jurisdiction, or with none recorded ("global"); None keeps all."""
        if not jurisdiction:
            return list(candidates)
        j = jurisdiction.lower()
        return [c for c in candidates if str(_meta(c, "jurisdiction") or "global").lower() in {j, "global"}]

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
        An empty filtered list returns ``[]``.
        """
        pool = self.filter_by_jurisdiction(candidates, jurisdiction)
        if not pool:
            return []
        enhanced = self.add_regulatory_context(query, jurisdiction, document_type)
        ranked = self.reranker.rerank_with_confidence(enhanced, pool, top_k=None, score_threshold=self.threshold)
        out = []
        for r in ranked:
            bonus = self.type_bonus if document_type and str(_meta(r, "document_type") or "").lower() == document_type.lower() else 0.0
            out.append({**r, "compliance_score": r["relevance_score"] + bonus + self._recency(r), "jurisdiction_ok": True})
        out.sort(key=lambda r: (-r["compliance_score"], r["original_position"]))
        return out[:top_k]
