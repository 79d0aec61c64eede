"""Scorers over the caches (course_lib.scorers.cached): the pair LRU and a collection's scores on disk."""
from course_lib.caches import LRUScoreCache
from course_lib.scorers.cached import CachedScorer


def test_cache_is_keyed_on_pair_not_query(overlap_scorer):
    cached = CachedScorer(overlap_scorer, LRUScoreCache(maxsize=3))
    a = cached.score("capital of france", ["paris is the capital of france", "bananas"])
    b = cached.score("capital of france", ["bananas", "capital city"])
    assert a[1] == b[0] and b[1] != a[0]
    assert cached.cache.hits == 1 and len(cached.cache) == 3
    cached.score("other", ["x"])
    assert len(cached.cache) == 3  # LRU eviction
