"""Financial compliance: jurisdiction filters, document-type priors and recency.

Following the course's ``ComplianceRerankingSystem``: filter by jurisdiction, prefer the
requested document type, add regulatory context to the query, rerank with a strict
threshold, and prefer recent rules.  Document-type and recency preferences are applied as
small, documented additive adjustments to the *probability* (never to raw logits), and the
final order is by the adjusted score with the model's own score kept alongside — *after*
reranking, so the reranker cannot overwrite them (the course's sample code set a bonus and then
sorted by the reranker's score alone, which silently threw the bonus away).

* Jurisdictions form a hierarchy (:data:`DEFAULT_HIERARCHY`): a rule of the EU applies in
  Germany, a global standard applies everywhere, a US rule does not apply in the EU
  (:func:`applies_in`).
* A passage with a ``superseded_date`` on or before today, or an ``effective_date`` still in the
  future, is kept but flagged (``in_force: False``) and ranked after every rule in force (a
  compliance officer may need to see the old or coming text, never in place of the rule in force).
* Every decision can be written to a JSONL audit log and replayed (:func:`replay`).

Example
-------
>>> from course_lib.domains.compliance import ComplianceRerankingSystem, applies_in
>>> ComplianceRerankingSystem.add_regulatory_context("record retention", "EU", "regulation")
'record retention (jurisdiction: EU; document type: regulation)'
>>> applies_in("EU", "DE"), applies_in("DE", "EU"), applies_in(None, "US"), applies_in("US", "DE")
(True, False, True, False)
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime, timezone
from pathlib import Path

from course_lib.domains.common import check_ranker, meta as _meta, rerank_pool, validate_domain_query
from course_lib.rerank import AdvancedReranker
from course_lib.scorers.base import Ranker


# child -> parent; a jurisdiction without a parent is a root.  "global" passages apply everywhere.
DEFAULT_HIERARCHY = {
    "EU": None, "DE": "EU", "FR": "EU", "IE": "EU", "NL": "EU", "LU": "EU",
    "UK": None, "US": None, "US-NY": "US", "US-CA": "US",
    "UAE": None, "ADGM": "UAE", "DIFC": "UAE",
}
GLOBAL_JURISDICTIONS = {"global", "international", ""}


def _ancestors(jurisdiction: str, hierarchy: dict) -> list[str]:
    """``jurisdiction`` and its parents up to the root (upper case), cycle-safe."""
    h = {str(k).upper(): (None if v is None else str(v).upper()) for k, v in hierarchy.items()}
    out, j = [], jurisdiction.upper()
    while j is not None and j not in out:
        out.append(j)
        j = h.get(j)
    return out


def applies_in(passage_jurisdiction: str | None, query_jurisdiction: str | None, hierarchy: dict | None = None) -> bool:
    """Whether a passage of ``passage_jurisdiction`` applies to a question about ``query_jurisdiction``.

    True for global passages (None, "global", "international"), for the query's own jurisdiction
    and for any ancestor of it in ``hierarchy`` (default :data:`DEFAULT_HIERARCHY`); a question
    with no jurisdiction accepts every passage.
    """
    if not query_jurisdiction:
        return True
    if passage_jurisdiction is None or str(passage_jurisdiction).strip().lower() in GLOBAL_JURISDICTIONS:
        return True
    return str(passage_jurisdiction).strip().upper() in _ancestors(query_jurisdiction.strip(), hierarchy or DEFAULT_HIERARCHY)


def _as_date(value) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        try:
            return date(int(str(value)[:4]), 1, 1)
        except ValueError:
            return None


def _text_hash(c: dict) -> str:
    """A short hash of a passage's text: the audit log records it so a replay can prove the same input."""
    return hashlib.sha1(str(c.get("text", "")).encode()).hexdigest()[:12]


def _doc_id(c: dict, position: int) -> str:
    return str(c.get("id", c.get("doc_id", _meta(c, "id") or position)))


class ComplianceRerankingSystem:
    """Rerank regulatory passages for a jurisdiction and a document type.

    Args:
        reranker: a :class:`~course_lib.rerank.Ranker` (None = an :class:`AdvancedReranker` on
            the course reranker).
        threshold: probability threshold (compliance wants few, trustworthy results).
        type_bonus: added to the probability of passages of the requested document type.
        recency_bonus: up to this much added for a rule effective today, decaying linearly
            to 0 over ``recency_years``.
        type_weights: ``{document type: bonus}`` added whatever type was asked for (a prior
            such as "rulebooks answer more questions than policy statements", chosen on dev data).
        hierarchy: jurisdiction parents (default :data:`DEFAULT_HIERARCHY`).
        context_in_query: append jurisdiction and document type to the query text the reranker
            reads (measure it: it can help or hurt).
        audit_log: a JSONL file; every call appends one record that :func:`replay` can re-run.
    """

    def __init__(self, reranker: Ranker | None = None, threshold: float = 0.6,
                 type_bonus: float = 0.05, recency_bonus: float = 0.05, recency_years: int = 10, today: date | None = None,
                 type_weights: dict | None = None, hierarchy: dict | None = None, context_in_query: bool = True,
                 audit_log=None):
        self.reranker = check_ranker(reranker) if reranker is not None else AdvancedReranker()
        self.threshold = threshold
        self.type_bonus = type_bonus
        self.recency_bonus = recency_bonus
        self.recency_years = recency_years
        self.today = today or date.today()
        self.type_weights = {str(k).lower(): float(v) for k, v in (type_weights or {}).items()}
        self.hierarchy = dict(DEFAULT_HIERARCHY if hierarchy is None else hierarchy)
        self.context_in_query = context_in_query
        self.audit_log = None if audit_log is None else Path(audit_log)

    def settings(self) -> dict:
        """Everything besides the model that decides an answer (recorded in the audit log)."""
        return {"threshold": self.threshold, "type_bonus": self.type_bonus, "recency_bonus": self.recency_bonus,
                "recency_years": self.recency_years, "today": self.today.isoformat(), "type_weights": self.type_weights,
                "hierarchy": self.hierarchy, "context_in_query": self.context_in_query}

    def model_fingerprint(self) -> str | None:
        """The reranker's scorer fingerprint (weights + settings), when it has one."""
        scorer = getattr(self.reranker, "scorer", None)
        return scorer.fingerprint() if scorer is not None and hasattr(scorer, "fingerprint") else None

    def filter_by_jurisdiction(self, candidates: list[dict], jurisdiction: str | None) -> list[dict]:
        """Keep passages that apply in that jurisdiction (:func:`applies_in`); None keeps all."""
        return [candidates[i] for i in self.jurisdiction_matches(candidates, jurisdiction)]

    def jurisdiction_matches(self, candidates: list[dict], jurisdiction: str | None) -> list[int]:
        """Positions of the candidates :meth:`filter_by_jurisdiction` keeps."""
        if jurisdiction is not None and not isinstance(jurisdiction, str):
            raise TypeError(f"jurisdiction must be a string or None, got {type(jurisdiction).__name__}")
        return [i for i, c in enumerate(candidates) if applies_in(_meta(c, "jurisdiction"), jurisdiction, self.hierarchy)]

    @staticmethod
    def add_regulatory_context(query: str, jurisdiction: str | None, document_type: str | None) -> str:
        ctx = []
        if jurisdiction:
            ctx.append(f"jurisdiction: {jurisdiction}")
        if document_type:
            ctx.append(f"document type: {document_type}")
        return f"{query} ({'; '.join(ctx)})" if ctx else query

    def _recency(self, c: dict) -> float:
        eff = _as_date(_meta(c, "effective_date") or _meta(c, "version_date"))
        if eff is None or self.recency_years <= 0 or eff > self.today:
            return 0.0  # a rule not yet in force earns no recency bonus
        age = (self.today - eff).days / 365.25
        return self.recency_bonus * max(0.0, 1.0 - age / self.recency_years)

    def _superseded(self, c: dict) -> bool:
        when = _as_date(_meta(c, "superseded_date"))
        return when is not None and when <= self.today

    def _in_force(self, c: dict) -> bool:
        eff = _as_date(_meta(c, "effective_date"))
        return not self._superseded(c) and (eff is None or eff <= self.today)

    def adjustments(self, c: dict, document_type: str | None) -> dict:
        """The additive adjustments for one passage (requested type plus type prior, recency) and
        whether it is superseded / in force today."""
        dtype = str(_meta(c, "document_type") or _meta(c, "doc_type") or "").lower()
        asked = self.type_bonus if document_type and dtype == document_type.lower() else 0.0
        return {"type": asked + self.type_weights.get(dtype, 0.0), "recency": self._recency(c),
                "superseded": self._superseded(c), "in_force": self._in_force(c)}

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
        enhanced = self.add_regulatory_context(query, jurisdiction, document_type) if self.context_in_query else query
        ranked = rerank_pool(self.reranker, enhanced, candidates, keep, self.threshold)
        out = []
        for r in ranked:
            adj = self.adjustments(r, document_type)
            out.append({**r, "compliance_score": r["relevance_score"] + adj["type"] + adj["recency"],
                        "superseded": adj["superseded"], "in_force": adj["in_force"], "jurisdiction_ok": True})
        # in force first, then by the adjusted score: the bonuses are applied after reranking and
        # decide the order, so the reranker cannot overwrite them
        out.sort(key=lambda r: (not r["in_force"], -r["compliance_score"], r["original_position"]))
        out = out[:top_k]
        if self.audit_log is not None:
            self._audit(query, jurisdiction, document_type, enhanced, candidates, keep, out)
        return out

    def _audit(self, query, jurisdiction, document_type, enhanced, candidates, keep, out) -> None:
        record = {
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "query": query, "jurisdiction": jurisdiction, "document_type": document_type, "reranker_query": enhanced,
            "model": self.model_fingerprint(), "settings": self.settings(),
            "candidates": [{"id": _doc_id(c, i), "sha1": _text_hash(c)}
                           for i, c in enumerate(candidates)],
            "filtered_out": [_doc_id(candidates[i], i) for i in range(len(candidates)) if i not in set(keep)],
            "results": [{"id": _doc_id(r, r["original_position"]), "relevance_score": round(float(r["relevance_score"]), 6),
                         "compliance_score": round(float(r["compliance_score"]), 6), "in_force": r["in_force"]}
                        for r in out],
        }
        self.audit_log.parent.mkdir(parents=True, exist_ok=True)
        with self.audit_log.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def load_jurisdiction_set() -> dict:
    """The course-written multi-jurisdiction rule set (educational, not legal advice): ``passages``
    with jurisdiction, document type, effective and superseded dates; labelled ``queries``; ``today``.

    >>> s = load_jurisdiction_set(); s["today"], len(s["queries"]) >= 5
    ('2026-06-30', True)
    """
    return json.loads((Path(__file__).resolve().parents[1] / "assets" / "domains" / "regulations.json").read_text())


def read_audit_log(path) -> list[dict]:
    """The records of a JSONL audit log, oldest first."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def replay(record: dict, candidates: list[dict], reranker: Ranker | None = None, tolerance: float = 1e-4) -> dict:
    """Re-run one audited decision and say whether it comes out the same.

    ``candidates`` must be the passages of the record (their text hashes are checked); the
    system is rebuilt from the recorded settings.  Returns ``{"same", "same_model", "same_inputs",
    "order", "recorded_order", "max_score_change"}``: a compliance officer can show that a past
    answer follows from its inputs, or see exactly what changed (model, passages, order).
    """
    s = record["settings"]
    system = ComplianceRerankingSystem(reranker, threshold=s["threshold"], type_bonus=s["type_bonus"],
                                       recency_bonus=s["recency_bonus"], recency_years=s["recency_years"],
                                       today=date.fromisoformat(s["today"]), type_weights=s["type_weights"],
                                       hierarchy=s["hierarchy"], context_in_query=s["context_in_query"])
    same_inputs = [(_doc_id(c, i), _text_hash(c)) for i, c in enumerate(candidates)] == \
        [(c["id"], c["sha1"]) for c in record["candidates"]]
    out = system.rerank_compliance_query(record["query"], record["jurisdiction"], record["document_type"], candidates,
                                         top_k=max(1, len(record["results"])) if record["results"] else len(candidates))
    order = [_doc_id(r, r["original_position"]) for r in out][: len(record["results"])]
    recorded = [r["id"] for r in record["results"]]
    new_scores = {_doc_id(r, r["original_position"]): r["compliance_score"] for r in out}
    change = max((abs(new_scores.get(r["id"], 0.0) - r["compliance_score"]) for r in record["results"]), default=0.0)
    same_model = system.model_fingerprint() == record["model"]
    return {"same": bool(same_inputs and same_model and order == recorded and change <= tolerance),
            "same_model": same_model, "same_inputs": same_inputs, "order": order, "recorded_order": recorded,
            "max_score_change": round(change, 6)}
