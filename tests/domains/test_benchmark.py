"""course_lib.domains.benchmark and caches.CollectionScorer: measuring domain systems on collections."""
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from course_lib.data import Dataset
from course_lib.domains.benchmark import (
    candidates,
    choose_weights,
    compare_runs,
    medquad_specialties,
    pipeline_runs,
    rescored_run,
    specialty_accuracy,
    split_ids,
    system_run,
)
from course_lib.domains.compliance import ComplianceRerankingSystem
from course_lib.rerank import AdvancedReranker
from course_lib.scorers.cached import CollectionScorer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def toy():
    corpus = {
        "r1": {"title": "", "text": "records kept five years", "doc_type": "Rulebook"},
        "g1": {"title": "", "text": "guidance on records kept", "doc_type": "Guidance"},
        "p1": {"title": "", "text": "policy statement", "doc_type": "Policy"},
    }
    return Dataset("toybench", corpus, {"q1": "how long are records kept", "q2": "policy statement"},
                   {"q1": {"r1": 1}, "q2": {"p1": 1}})


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))


def test_collection_scorer_caches_by_doc_id_and_reloads(toy, overlap_scorer):
    s = CollectionScorer(overlap_scorer, toy)
    pairs = [("how long are records kept", toy.doc_text("r1")), ("how long are records kept", toy.doc_text("g1"))]
    first = s.score_pairs(pairs)
    assert overlap_scorer.calls == 1 and s.misses == 2
    s.score_pairs(pairs)
    assert overlap_scorer.calls == 1 and s.hits == 2, "the second call is served from the cache"
    s.save()
    path = Path(s.cache.path)
    with gzip.open(path, "rt") as fh:
        assert set(json.load(fh)["how long are records kept"]) == {"r1", "g1"}
    shipped = CollectionScorer(None, toy, fingerprint="overlap-v1")  # no model: cached pairs only
    assert np.allclose(shipped.score_pairs(pairs), first)
    with pytest.raises(KeyError, match="not in the shipped scores"):
        shipped.score_pairs([("another question", toy.doc_text("r1"))])


def test_collection_scorer_needs_a_fingerprint_without_a_model(toy):
    with pytest.raises(ValueError, match="fingerprint"):
        CollectionScorer(None, toy)
    with pytest.raises(TypeError):
        CollectionScorer("not a scorer", toy)


def test_candidates_and_system_run_keep_the_systems_order(toy, overlap_scorer):
    first = {"q1": {"r1": 0.2, "g1": 0.5, "p1": 0.1}, "q2": {"p1": 0.9, "r1": 0.1, "g1": 0.0}}
    cands = candidates(toy, first, "q1")
    assert [c["id"] for c in cands] == ["g1", "r1", "p1"]
    assert cands[0]["metadata"] == {"doc_type": "Guidance"} and cands[0]["score"] == 0.5
    system = ComplianceRerankingSystem(AdvancedReranker(scorer=overlap_scorer), threshold=0.0, type_bonus=0.0,
                                       recency_bonus=0.0, type_weights={"rulebook": 0.5}, context_in_query=False)
    run = system_run(toy, first, lambda qid, text, c: system.rerank_compliance_query(text, None, None, c, top_k=3))
    assert max(run["q1"], key=run["q1"].get) == "r1", "the rulebook prior, applied after reranking, decides"
    with pytest.raises(ValueError, match="twice"):
        system_run(toy, first, lambda qid, text, c: [c[0], c[0]])


def test_choose_weights_finds_a_prior_that_helps_and_leaves_a_useless_one_at_zero(toy):
    run = {"q1": {"r1": 0.50, "g1": 0.57, "p1": 0.1}, "q2": {"p1": 0.9, "r1": 0.2, "g1": 0.1}}
    group = lambda d: toy.corpus[d]["doc_type"]
    weights, best = choose_weights(run, toy.qrels, group)
    assert weights["Rulebook"] > 0 or weights["Guidance"] < 0
    assert best == pytest.approx(1.0)
    assert rescored_run(run, lambda d: weights[group(d)])["q1"]["r1"] > rescored_run(run, lambda d: weights[group(d)])["q1"]["g1"]
    perfect = {"q1": {"r1": 0.9, "g1": 0.1, "p1": 0.0}, "q2": {"p1": 0.9, "r1": 0.1, "g1": 0.0}}
    assert choose_weights(perfect, toy.qrels, group)[0] == {"Guidance": 0.0, "Policy": 0.0, "Rulebook": 0.0}


def test_pipeline_runs_and_compare_runs(toy, overlap_scorer):
    first = {"q1": {"r1": 0.2, "g1": 0.5, "p1": 0.1}, "q2": {"p1": 0.1, "r1": 0.9, "g1": 0.0}}
    runs = pipeline_runs(toy, first, CollectionScorer(overlap_scorer, toy), label="dense")
    assert list(runs) == ["dense", "dense → reranker", "dense → reranker fused"]
    rows = compare_runs(runs, toy.qrels, base="dense", n_resamples=200)
    base, ce = rows[0], rows[1]
    assert base["diff"] == 0.0 and ce["ndcg@10"] > base["ndcg@10"] and ce["low"] <= ce["diff"] <= ce["high"]
    with pytest.raises(ValueError, match="same queries"):
        compare_runs({"a": first, "b": {"q1": first["q1"]}}, toy.qrels, base="a")


def test_specialty_labels_split_and_accuracy():
    ds = Dataset("mq", {"a": {"text": "x", "source": "CancerGov"}, "b": {"text": "y", "source": "GHR"}}, {}, {})
    assert medquad_specialties(ds) == {"a": "oncology", "b": "general"}
    fit, held = split_ids([str(i) for i in range(100)], 0.2, seed=0)
    assert len(held) == 20 and not set(fit) & set(held) and split_ids([str(i) for i in range(100)], 0.2, seed=0)[1] == held
    r = specialty_accuracy(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert r["accuracy"] == 0.75 and r["per_class"]["b"] == {"n": 3, "recall": 0.667, "precision": 1.0}


def test_course_written_sets_are_consistent():
    from course_lib.domains.compliance import load_jurisdiction_set
    from course_lib.domains.medical import load_safety_set

    regs = load_jurisdiction_set()
    ids = {p["id"] for p in regs["passages"]}
    assert all(set(q["relevant"]) <= ids for q in regs["queries"])
    safety = load_safety_set()
    sids = {p["id"] for p in safety["passages"]}
    assert all(set(q["relevant"]) <= sids for q in safety["queries"])
    assert "not medical advice" in safety["about"].lower() and "not legal advice" in regs["about"].lower()


def test_the_fine_tuned_medical_rerankers_scores_ship_with_its_record():
    record = json.loads((ROOT / "eval_cache" / "domains" / "medquad-reranker.json").read_text())
    assert (ROOT / "eval_cache" / "scores" / f"{record['fingerprint']}-medquad.json.gz").is_file()
    assert record["run_dir"].startswith("runs/"), "fine-tuned models live under runs/, never in the package"
    assert record["seconds"]["training"] > 0 and record["hardware"]["device"] in {"cpu", "cuda"}


@pytest.mark.slow
def test_shipped_fine_tuned_scores_match_the_model_when_it_is_here(shared_data):
    import random

    from course_lib.data import load_beir
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    record = json.loads((ROOT / "eval_cache" / "domains" / "medquad-reranker.json").read_text())
    run_dir = ROOT / record["run_dir"]
    if not run_dir.is_dir():
        pytest.skip(f"{record['run_dir']} not trained on this machine (scripts/train_medical_reranker.py)")
    model = CrossEncoderScorer(str(run_dir))
    if model.fingerprint() != record["fingerprint"]:
        pytest.skip("runs/ holds a different fine-tuned model than the one whose scores ship")
    with gzip.open(ROOT / "eval_cache" / "scores" / f"{record['fingerprint']}-medquad.json.gz", "rt") as fh:
        data = json.load(fh)
    ds = load_beir("medquad", "test", data_dir=shared_data)
    rng = random.Random(0)
    sample = [(q, d) for q in rng.sample(sorted(data), 3) for d in rng.sample(sorted(data[q]), 3)]
    live = model.score_pairs([(q, ds.doc_text(d)) for q, d in sample])
    assert np.allclose(live, [data[q][d] for q, d in sample], atol=2e-3)
