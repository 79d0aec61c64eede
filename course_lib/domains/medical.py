"""Clinical decision support: reranking with patient context, specialties and safety filters.

The course's sample code enhanced the query with patient context, picked a specialty model and
threshold, and filtered results for safety.  This version keeps that shape and makes it safe to
reason about: specialty detection matches whole words, thresholds are probabilities, results
are new dicts, and safety filtering never drops a passage silently — it is returned in
``excluded`` with the reason, for a clinician to see.

Example
-------
>>> from course_lib.domains.medical import MedicalRerankingSystem
>>> MedicalRerankingSystem.detect_specialty("sudden chest pain and hypertension")
'cardiology'
>>> MedicalRerankingSystem.enhance_query("treatment options", {"age": 67, "conditions": ["diabetes"]})
'treatment options age 67 diabetes'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from course_lib.domains.common import as_str_list, check_ranker, meta, rerank_pool, validate_domain_query
from course_lib.rerank import AdvancedReranker, Ranker

SPECIALTY_KEYWORDS = {
    "cardiology": ["heart", "cardiac", "chest pain", "hypertension", "ecg", "arrhythmia", "myocardial"],
    "oncology": ["cancer", "tumor", "tumour", "chemotherapy", "biopsy", "malignant", "metastasis"],
    "neurology": ["brain", "seizure", "headache", "stroke", "cognitive", "migraine", "epilepsy"],
}
# Probability thresholds: stricter where a wrong passage costs more.
SPECIALTY_THRESHOLDS = {"cardiology": 0.5, "oncology": 0.5, "neurology": 0.5, "general": 0.4}


def _contains(text: str, phrase: str) -> bool:
    return re.search(r"\b" + re.escape(phrase.lower()) + r"\b", text.lower()) is not None


@dataclass
class MedicalResult:
    """Reranked passages, the passages excluded by safety rules (with reasons), and the context used."""

    results: list[dict]
    excluded: list[dict] = field(default_factory=list)
    specialty: str = "general"
    query: str = ""
    threshold: float = 0.5


class MedicalRerankingSystem:
    """Rerank clinical passages for a query and a patient.

    Args:
        reranker: the general :class:`~course_lib.rerank.Ranker` (anything with
            ``rerank_with_confidence``; None = an :class:`AdvancedReranker` on the course reranker).
        specialty_rerankers: optional ``{specialty: Ranker}`` (for example fine-tuned models
            from notebook 03); a specialty without one uses ``reranker``.
        thresholds: probability threshold per specialty.
    """

    def __init__(self, reranker: Ranker | None = None, specialty_rerankers: dict | None = None,
                 thresholds: dict | None = None):
        self.reranker = check_ranker(reranker) if reranker is not None else AdvancedReranker()
        self.specialty_rerankers = {s: check_ranker(r) for s, r in (specialty_rerankers or {}).items()}
        self.thresholds = {**SPECIALTY_THRESHOLDS, **(thresholds or {})}

    @staticmethod
    def enhance_query(query: str, patient_context: dict | None) -> str:
        """Append age, conditions and medications to the query (the course's approach).

        ``conditions`` and ``medications`` may be one string or a list of strings.
        """
        ctx = _context(patient_context)
        parts = []
        if ctx.get("age") is not None:
            parts.append(f"age {ctx['age']}")
        parts.extend(as_str_list(ctx.get("conditions"), "conditions"))
        parts.extend(as_str_list(ctx.get("medications"), "medications"))
        return f"{query} {' '.join(parts)}".strip()

    @staticmethod
    def detect_specialty(query: str) -> str:
        """The specialty with the most keyword hits (whole words); ties by name; 'general' if none."""
        hits = {s: sum(_contains(query, k) for k in kws) for s, kws in SPECIALTY_KEYWORDS.items()}
        best = max(sorted(hits), key=lambda s: hits[s])
        return best if hits[best] > 0 else "general"

    @staticmethod
    def safety_check(candidate: dict, patient_context: dict | None) -> str | None:
        """A reason to exclude a passage for this patient, or None.

        A passage may list ``contraindications`` (conditions or medications, in its dict or its
        ``metadata``); it is excluded when one matches the patient's conditions or medications.
        """
        ctx = _context(patient_context)
        patient = {x.lower() for x in as_str_list(ctx.get("conditions"), "conditions") + as_str_list(ctx.get("medications"), "medications")}
        contra = meta(candidate, "contraindications") or []
        if isinstance(contra, str):  # a comma-separated string, as metadata stores often hold lists
            contra = [c.strip() for c in contra.split(",")]
        clash = sorted(patient & {c.lower() for c in as_str_list(contra, "contraindications")})
        return f"contraindicated for: {', '.join(clash)}" if clash else None

    def rerank_medical_query(self, query: str, patient_context: dict | None, candidates: list[dict], top_k: int = 10) -> MedicalResult:
        """Enhance the query, pick the specialty's reranker and threshold, rerank, apply safety rules.

        The query must hold text of its own: patient context appended to an empty query does
        not make it a question.
        """
        validate_domain_query(query, candidates, top_k)
        enhanced = self.enhance_query(query, patient_context)
        specialty = self.detect_specialty(enhanced)
        reranker = self.specialty_rerankers.get(specialty, self.reranker)
        threshold = self.thresholds.get(specialty, self.thresholds["general"])
        ranked = rerank_pool(reranker, enhanced, candidates, list(range(len(candidates))), threshold)
        kept, excluded = [], []
        for r in ranked:
            reason = self.safety_check(r, patient_context)
            if reason:
                excluded.append({**r, "excluded_because": reason})
            else:
                kept.append({**r, "specialty": specialty})
        return MedicalResult(kept[:top_k], excluded, specialty, enhanced, threshold)


def _context(patient_context) -> dict:
    if patient_context is None:
        return {}
    if not isinstance(patient_context, dict):
        raise TypeError(f"patient_context must be a dict or None, got {type(patient_context).__name__}")
    return patient_context
