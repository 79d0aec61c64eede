"""The shipped evaluation cache must agree with the live models (a random sample is recomputed)."""
import gzip
import json
import random
from pathlib import Path

import numpy as np
import pytest

from course_lib.caches import embedding_file, seed_dirs
from course_lib.data import load_beir, load_course_corpus
from course_lib.dense import encode_texts
from course_lib.models import load_embedder

SEED = Path(__file__).resolve().parents[1] / "eval_cache"
pytestmark = pytest.mark.skipif(not SEED.is_dir(), reason="no eval_cache/ shipped in this checkout")


@pytest.mark.parametrize("name", ["scifact", "cranfield", "medquad", "obliqa", "course"])
def test_shipped_scores_match_live_model(name, shared_data, course_scorer):
    path = SEED / "scores" / f"{course_scorer.fingerprint()}-{name}.json.gz"
    assert path.is_file(), f"no shipped scores for the current course reranker: {path.name}"
    with gzip.open(path, "rt") as fh:
        data = json.load(fh)
    ds = load_course_corpus() if name == "course" else load_beir(name, "test", data_dir=shared_data)
    rng = random.Random(0)
    sample = [(q, d) for q in rng.sample(sorted(data), 4) for d in rng.sample(sorted(data[q]), 3)]
    live = course_scorer.score_pairs([(q, ds.doc_text(d)) for q, d in sample])
    cached = np.array([data[q][d] for q, d in sample])
    assert np.allclose(live, cached, atol=2e-3), np.abs(live - cached).max()


@pytest.mark.parametrize("name", ["scifact", "cranfield", "medquad", "obliqa"])
def test_shipped_embeddings_match_live_embedder(name, shared_data):
    emb = load_embedder()
    ds = load_beir(name, "test", data_dir=shared_data)
    path = SEED / embedding_file(name, ds.corpus, emb)
    assert path.is_file() and SEED in seed_dirs()
    stored = np.load(path).astype(np.float32)
    ids = list(ds.corpus)
    idx = random.Random(1).sample(range(len(ids)), 8)
    live = encode_texts([ds.doc_text(ids[i]) for i in idx], emb, show_progress=False)
    assert np.allclose(stored[idx], live, atol=2e-3)


def test_shipped_query_embeddings_match_live_embedder():
    """The shipped query vectors (what makes first stages the same on every CPU) are the bi-encoder's own."""
    from course_lib.caches import QueryEmbeddingCache, embedder_fingerprint

    emb = load_embedder()
    path = SEED / "queries" / f"{embedder_fingerprint(emb)}.npz"
    assert path.is_file(), f"no shipped query embeddings for the bundled bi-encoder: {path.name}"
    shipped = QueryEmbeddingCache.read(path)
    assert len(shipped) > 1000
    texts = random.Random(2).sample(sorted(shipped), 16)
    live = encode_texts(texts, emb, show_progress=False)
    assert np.abs(np.stack([shipped[t] for t in texts]) - live).max() < 1e-5
