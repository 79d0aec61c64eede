"""The levers of notebook 05, as structured data and as code.

* :class:`Lever` — one speed lever (which scorer, a cascade's rescore depth, an adaptive-K margin),
  stored as data in the levels record and turned into a Scorer by :meth:`Lever.build`.
* :func:`pre_filter` — a cheap Jaccard pre-filter, made safe (no division by zero on empty text;
  never filters the list down to nothing).
* :func:`adaptive_k` — rerank only the candidates close to the best first-stage score.
* :func:`small_reranker_path` — the distilled speed-tier model, when this checkout has it.

Example
-------
>>> jaccard("", "")
0.0
>>> round(jaccard("the cat sat", "the cat ran"), 2)
0.5
>>> Lever("cascade", rescore_top=5).name, Lever("distilled", adaptive_margin=0.1).name
('cascade (distilled -> full top 5)', 'distilled + adaptive K (margin 0.1)')
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from course_lib import settings
from course_lib.scorers.base import Scorer
from course_lib.scorers.cascade import CascadeScorer
from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib.scorers.token_budget import TokenBudgetScorer

__all__ = ["Lever", "jaccard", "pre_filter", "pre_filter_positions", "adaptive_k", "small_reranker_path"]

_WORD = re.compile(r"\w+")


def jaccard(a: str, b: str) -> float:
    """Word-set Jaccard similarity; 0.0 when both texts are empty (no division by zero)."""
    sa, sb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    union = sa | sb
    return len(sa & sb) / len(union) if union else 0.0


def pre_filter_positions(query: str, candidates: list[dict], min_similarity: float = 0.05, min_keep: int = 10) -> list[int]:
    """Positions of the candidates with Jaccard >= ``min_similarity``, topped up to ``min_keep`` by
    Jaccard order (so the list is never emptied), in their original order."""
    if min_keep < 0:
        raise ValueError(f"min_keep must be >= 0, got {min_keep}")
    sims = [jaccard(query, c["text"]) for c in candidates]
    keep = {i for i, s in enumerate(sims) if s >= min_similarity}
    if len(keep) < min_keep:
        for i in sorted(range(len(candidates)), key=lambda i: (-sims[i], i)):
            if len(keep) >= min_keep:
                break
            keep.add(i)
    return sorted(keep)


def pre_filter(query: str, candidates: list[dict], min_similarity: float = 0.05, min_keep: int = 10) -> list[dict]:
    """The candidates :func:`pre_filter_positions` keeps: the same dict objects (no copies, no
    changes), in their original order."""
    return [candidates[i] for i in pre_filter_positions(query, candidates, min_similarity, min_keep)]


def adaptive_k(first_scores, margin: float, k_min: int = 5) -> int:
    """How many first-stage candidates to rerank: those within ``margin`` of the best first-stage
    score, at least ``k_min`` (all of them when fewer).  A query with one clear winner needs few;
    a query whose scores are flat needs them all.

    >>> adaptive_k([0.9, 0.85, 0.5, 0.4], margin=0.1, k_min=1), adaptive_k([0.9, 0.85, 0.5, 0.4], margin=0.5, k_min=1)
    (2, 4)
    """
    s = sorted((float(x) for x in first_scores), reverse=True)
    if not s:
        return 0
    n = sum(1 for x in s if x >= s[0] - margin)
    return min(len(s), max(k_min, n))


def small_reranker_path():
    """The distilled course reranker, or None when this machine has none: ``$COURSE_SMALL_RERANKER``,
    else ``course_reranker/assets_small/`` in the package, else ``runs/course-reranker-small/`` in the
    checkout (where ``python -m course_lib.instructor distill`` puts it)."""
    for p in (settings.small_reranker(), settings.PACKAGE_DIR / "course_reranker" / "assets_small",
              settings.PACKAGE_DIR.parent / "runs" / "course-reranker-small"):
        if p and (Path(p) / "config.json").is_file():
            return Path(p)
    return None


@dataclass(frozen=True)
class Lever:
    """One speed lever, as data: what the levels record stores and ``course-lib bench`` names.

    Attributes:
        scorer: ``"full"`` (the model as loaded), ``"token budget"`` (:class:`TokenBudgetScorer`),
            ``"max length 128"``, ``"distilled"`` (the speed tier) or ``"cascade"`` (the distilled
            model ranks, the full one rescores its top ``rescore_top``).
        rescore_top: the cascade's rescore depth (cascade only).
        adaptive_margin: rerank only the candidates within this first-stage margin of the best
            (:func:`adaptive_k`); None reranks every candidate.
    """

    scorer: str = "full"
    rescore_top: int | None = None
    adaptive_margin: float | None = None

    SCORERS = ("full", "token budget", "max length 128", "distilled", "cascade")

    def __post_init__(self):
        if self.scorer not in self.SCORERS:
            raise ValueError(f"unknown lever scorer {self.scorer!r}; choose from {', '.join(self.SCORERS)}")
        if (self.scorer == "cascade") != (self.rescore_top is not None):
            raise ValueError("rescore_top is set for a cascade, and only for a cascade")
        if self.rescore_top is not None and int(self.rescore_top) < 1:
            raise ValueError(f"rescore_top must be at least 1, got {self.rescore_top}")
        if self.adaptive_margin is not None and not float(self.adaptive_margin) >= 0:
            raise ValueError(f"adaptive_margin must be >= 0, got {self.adaptive_margin}")

    @property
    def name(self) -> str:
        """The lever's label in tables (``"cascade (distilled -> full top 5)"``, ``"adaptive K (margin 0.1)"``)."""
        base = f"cascade (distilled -> full top {self.rescore_top})" if self.scorer == "cascade" else self.scorer
        if self.adaptive_margin is None:
            return base
        k = f"adaptive K (margin {self.adaptive_margin})"
        return k if self.scorer == "full" else f"{base} + {k}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, spec) -> "Lever":
        """A :class:`Lever` from a Lever or its dict (``{"scorer": "cascade", "rescore_top": 5}``).

        >>> Lever.of({"scorer": "full", "adaptive_margin": 0.2}).name
        'adaptive K (margin 0.2)'
        """
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, dict):
            unknown = set(spec) - {"scorer", "rescore_top", "adaptive_margin"}
            if unknown:
                raise ValueError(f"unknown lever field(s) {sorted(unknown)}")
            return cls(**spec)
        raise TypeError(f"a lever is a Lever or a dict of its fields, got {type(spec).__name__}")

    def build(self, base: CrossEncoderScorer, small=None) -> tuple[Scorer, float | None]:
        """The Scorer this lever stands for, on ``base`` (and the distilled scorer ``small``, or a
        callable returning it: loaded only when needed), and its adaptive-K margin (or None)."""
        get_small = small if callable(small) else (lambda: small)
        if self.scorer == "full":
            scorer = base
        elif self.scorer == "token budget":
            scorer = TokenBudgetScorer(base)
        elif self.scorer == "max length 128":
            scorer = base.configured(max_length=128)
        elif self.scorer == "distilled":
            scorer = get_small()
        else:
            scorer = CascadeScorer(get_small(), base, int(self.rescore_top))
        return scorer, self.adaptive_margin
