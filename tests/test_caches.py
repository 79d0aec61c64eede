"""The storage layer (course_lib.caches): score files keyed by the weights in memory."""
import pytest

from course_lib.caches import ScoreCache
from course_lib.scorers.base import Scorer
from course_lib.scorers.cached import CachedScorer


def test_score_cache_file_follows_the_weights_in_memory(course_scorer, shifted_scorer, tmp_path, monkeypatch):
    """A model changed in memory (same files on disk) must not read the shipped model's scores."""
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    assert shifted_scorer.fingerprint() != course_scorer.fingerprint()
    base = ScoreCache.for_scorer(course_scorer, "course")
    mod = ScoreCache.for_scorer(shifted_scorer, "course")
    assert base.path.parent == mod.path.parent == tmp_path / "scores"
    assert base.path != mod.path
    assert base.path.name == f"{course_scorer.fingerprint()}-course.json.gz"
    base.put("a query", "d1", 1.5)
    base.save()
    assert ScoreCache.for_scorer(course_scorer, "course").get("a query", "d1") == 1.5
    assert ScoreCache.for_scorer(shifted_scorer, "course").get("a query", "d1") is None
    # the in-memory pair cache is keyed the same way
    assert CachedScorer(course_scorer).cache.model_id != CachedScorer(shifted_scorer).cache.model_id


def test_a_scorer_without_fingerprint_is_never_disk_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))

    class Anonymous(Scorer):
        def score_pairs(self, pairs):
            return [0.0] * len(pairs)

    assert ScoreCache.for_scorer(Anonymous(), "course") is None
    with pytest.raises(TypeError):
        CachedScorer(object())
