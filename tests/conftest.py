"""Shared fixtures. Tests run offline (the course's one policy): a hub name must fail fast, never retry."""
import os
from pathlib import Path

from course_lib.env import configure

configure(offline=True)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from course_lib.scorers.base import Scorer  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def data_dir() -> Path | None:
    env = os.environ.get("COURSE_DATA_DIR")
    if env and Path(env).is_dir():
        return Path(env)
    return SHARED if SHARED.is_dir() else None


@pytest.fixture(scope="session")
def shared_data():
    d = data_dir()
    if d is None:
        pytest.skip("no data directory (set COURSE_DATA_DIR or provide ../shared/datasets)")
    return d


class OverlapScorer(Scorer):
    """A fast, deterministic stand-in for a cross-encoder: logit = shared words - 1."""

    def __init__(self):
        self.calls = 0

    def score_pairs(self, pairs):
        self.calls += 1
        out = []
        for q, t in pairs:
            qw = {w.strip("?.,").lower() for w in q.split()}
            tw = {w.strip("?.,").lower() for w in t.split()}
            out.append(len(qw & tw) - 1.0)
        return np.asarray(out, dtype=np.float32)

    def fingerprint(self):
        return "overlap-v1"


@pytest.fixture
def overlap_scorer():
    return OverlapScorer()


@pytest.fixture(scope="session")
def course_model():
    """The course reranker, loaded once per session (a sentence-transformers CrossEncoder)."""
    from course_lib.models import load_reranker

    return load_reranker()


@pytest.fixture
def course_scorer(course_model):
    """A fresh CrossEncoderScorer per test on the one loaded model: scorers keep mutable state
    (``last_stats``), so no test sees another's."""
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    return CrossEncoderScorer(course_model)


@pytest.fixture(scope="session")
def shifted_scorer():
    """A CrossEncoderScorer over a private copy of the course reranker whose head bias was raised
    by 1 in memory (every logit +1): same files on disk, different weights."""
    import torch
    from sentence_transformers import CrossEncoder

    from course_lib.course_reranker.modeling import register
    from course_lib.models import course_reranker_path
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    register()
    model = CrossEncoder(str(course_reranker_path()), device="cpu")
    with torch.no_grad():
        model[0].auto_model.logit_bias.add_(1.0)
    return CrossEncoderScorer(model)


@pytest.fixture(scope="session")
def course_ds():
    from course_lib.data import load_course_corpus

    return load_course_corpus()


def pytest_collection_modifyitems(config, items):
    """Tests that use the benchmark data directory carry the ``needs_data`` marker."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.needs_data)
