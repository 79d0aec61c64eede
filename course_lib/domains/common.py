"""What both domain systems need: reading metadata, list-valued fields, and reranking a filtered pool
without losing track of where each candidate came from.

>>> as_str_list("warfarin", "medications"), as_str_list(["a", "b"], "conditions"), as_str_list(None, "x")
(['warfarin'], ['a', 'b'], [])
"""

from __future__ import annotations

from course_lib.scorers.base import Ranker, validate_candidates, validate_query, validate_rank_args


def meta(c: dict, key: str):
    """``c[key]``, else ``c["metadata"][key]``, else None."""
    return c.get(key, (c.get("metadata") or {}).get(key))


def as_str_list(value, name: str) -> list[str]:
    """A field that holds one or several strings, as a list.

    A single string is *one* item (``"warfarin"`` -> ``["warfarin"]``; iterating it would give
    its characters).  None is empty.  Anything else must be a list or tuple of strings.
    """
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        bad = [x for x in items if not isinstance(x, str)]
        if bad:
            raise TypeError(f"{name} must hold strings, got {type(bad[0]).__name__}")
        return [x for x in items if x.strip()]
    raise TypeError(f"{name} must be a string or a list of strings, got {type(value).__name__}")


def check_ranker(ranker) -> Ranker:
    if not isinstance(ranker, Ranker):
        raise TypeError(f"expected a Ranker (anything with rerank_with_confidence), got {type(ranker).__name__}")
    return ranker


def rerank_pool(ranker: Ranker, query: str, candidates: list[dict], keep: list[int], score_threshold: float) -> list[dict]:
    """Rerank ``[candidates[i] for i in keep]``; ``original_position`` then indexes ``candidates``
    (the caller's list), not the filtered pool."""
    pool = [candidates[i] for i in keep]
    if not pool:
        return []
    ranked = ranker.rerank_with_confidence(query, pool, top_k=None, score_threshold=score_threshold)
    return [{**r, "original_position": keep[r["original_position"]]} for r in ranked]


def validate_domain_query(query: str, candidates, top_k) -> None:
    """The checks every domain entry point makes on the learner's own input, before any work."""
    validate_query(query)
    validate_candidates(candidates)
    validate_rank_args(top_k, 0.0)
