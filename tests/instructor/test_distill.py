"""The distilled speed tier: a student that shares the course reranker's word-piece embeddings,
its save/load round trip, the data file it trains on, and the shipped student."""
import json

import numpy as np
import pytest

from tests.helpers import write_course_as_beir


def _student(keep=1, nudge=0.01):
    """A ``keep``-layer student of the course reranker with one layer's weights nudged (so that it
    differs from a plain truncation), in fp32 on the CPU."""
    import torch

    from course_lib.course_reranker.modeling import CourseRerankerModel, register
    from course_lib.instructor.distill import layers_evenly, truncate_layers
    from course_lib.models import course_reranker_path

    register()
    teacher = CourseRerankerModel.from_pretrained(str(course_reranker_path()), dtype=torch.float32)
    student = truncate_layers(teacher, layers_evenly(teacher.config.num_hidden_layers, keep)).eval()
    with torch.no_grad():
        student.bert.encoder.layer[0].output.dense.bias.add_(nudge)
    return student


def test_student_round_trip_fills_in_the_teachers_embeddings(tmp_path):
    import torch
    from safetensors import safe_open
    from transformers import AutoTokenizer

    from course_lib.instructor.distill import WORD_EMBEDDINGS, save_student
    from course_lib.models import course_reranker_path, load_reranker
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    student = _student()
    tok = AutoTokenizer.from_pretrained(str(course_reranker_path()))
    out = save_student(student, tok, tmp_path / "small", course_reranker_path(), max_length=128)
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        assert WORD_EMBEDDINGS not in f.keys()  # stored once, in the teacher
    loaded = load_reranker(str(out), device="cpu")
    assert loaded.model.config.num_hidden_layers == 1 and loaded.max_length == 128
    assert torch.equal(loaded.model.get_parameter(WORD_EMBEDDINGS).detach(),
                       student.get_parameter(WORD_EMBEDDINGS).detach().half().float())
    q, docs = "does aspirin prevent heart attacks", ["Aspirin lowers the risk of myocardial infarction.", "Tax law for ships."]
    enc = tok([q] * 2, docs, return_tensors="pt", padding=True)
    with torch.no_grad():
        direct = student(**enc).logits.view(-1).numpy()
    got = CrossEncoderScorer(loaded).score(q, docs)
    np.testing.assert_allclose(got, direct, atol=0.05)  # fp16 storage of the other weights, nothing more


def test_student_refuses_a_teacher_it_was_not_distilled_from(tmp_path):
    from transformers import AutoTokenizer

    from course_lib.instructor.distill import SHARED_FILE, save_student
    from course_lib.models import ModelLoadError, course_reranker_path, load_reranker

    out = save_student(_student(), AutoTokenizer.from_pretrained(str(course_reranker_path())), tmp_path / "small",
                       course_reranker_path(), max_length=128)
    info = json.loads((out / SHARED_FILE).read_text())
    (out / SHARED_FILE).write_text(json.dumps(dict(info, fingerprint="0" * 16)))
    with pytest.raises(ModelLoadError, match="not the one it was distilled from"):
        load_reranker(str(out), device="cpu")


@pytest.mark.slow
def test_prepare_and_distill_on_a_tiny_collection(tmp_path, course_ds):
    """End to end on the CPU: a data file from a BEIR folder (no labels read but the dev claims'),
    then a 1-layer student selected on the dev queries, saved, and loadable."""
    from course_lib.instructor.distill import (
        distill_groups,
        prepare_groups,
        read_groups,
    )
    from course_lib.models import course_reranker_path, load_reranker

    write_course_as_beir(course_ds, tmp_path / "data" / "scifact", split="train")
    teacher = tmp_path / "teacher"  # the real teacher's files, with course queries as its "dev claims"
    teacher.mkdir()
    for f in course_reranker_path().iterdir():
        (teacher / f.name).symlink_to(f)
    info = json.loads((course_reranker_path() / "training.json").read_text())
    dev = sorted(course_ds.queries)[:4]
    (teacher / "training.json").unlink()
    (teacher / "training.json").write_text(json.dumps(dict(info, dev_query_ids=dev, medquad_tune_query_ids=[])))
    summary = prepare_groups(tmp_path / "data", tmp_path / "groups.json.xz", teacher_dir=teacher, n_candidates=5,
                             show_progress=False)
    payload = read_groups(tmp_path / "groups.json.xz")
    assert summary["dev_queries"] == 4 and set(payload["dev"]["queries"]) == set(dev)
    train_ids = {g["id"] for g in payload["groups"] if g["source"] == "scifact train claims"}
    assert train_ids and not train_ids & set(dev), "dev claims never become training queries"
    assert all(len(g["docs"]) == 5 for g in payload["groups"] if g["source"] != "course corpus train half")
    report = distill_groups(tmp_path / "groups.json.xz", tmp_path / "student", teacher_dir=teacher, keep=1, epochs=2,
                            batch_queries=4, max_queries=8, device="cpu", log=lambda *a: None)
    assert report["layers"] == "1 of 6" and len(report["history"]) == 2
    assert report["best_epoch"] == max(report["history"], key=lambda h: h["ndcg@10"])["epoch"]
    assert report["history"][-1]["mean_loss"] < report["history"][0]["mean_loss"] * 1.5
    assert load_reranker(str(tmp_path / "student"), device="cpu").model.config.num_hidden_layers == 1


def test_shipped_student_is_the_speed_tier_its_report_describes():
    from course_lib.optimize import small_reranker_path

    path = small_reranker_path()
    assert path is not None and path.name == "assets_small", "the package ships the distilled reranker"
    rep = json.loads((path / "distill_report.json").read_text())
    best = max(rep["history"], key=lambda h: h["ndcg@10"])
    assert rep["best_epoch"] == best["epoch"]
    assert best["ndcg@10"] >= rep["teacher_dev"]["ndcg@10"] - 0.02, "the selection rule: within 0.02 of the teacher on dev"
    cfg = json.loads((path / "config.json").read_text())
    assert cfg["num_hidden_layers"] == int(rep["layers"].split()[0]) < 6


def test_shipped_student_keeps_the_teachers_ranking_on_the_course_corpus(course_scorer):
    """On the course corpus's evaluation half (never distilled on), dense top 30: the shipped student's
    NDCG@10 is close to the teacher's and most of its top 10 is the teacher's."""
    from course_lib import metrics
    from course_lib.data import course_query_split
    from course_lib.optimize import small_reranker_path
    from course_lib.runs import first_stage_run
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    ds = course_query_split()[1]
    first = first_stage_run(ds, "dense", 30)
    small = CrossEncoderScorer(str(small_reranker_path()))
    runs = {}
    for name, scorer in (("teacher", course_scorer), ("student", small)):
        runs[name] = {q: dict(zip(c, scorer.score(ds.queries[q], [ds.doc_text(d) for d in c]).tolist()))
                      for q, c in first.items()}
    ndcg = {n: metrics.mean(metrics.ndcg(r, ds.qrels, 10)) for n, r in runs.items()}
    overlap = np.mean([len(set(metrics.ranked(runs["student"][q], 10)) & set(metrics.ranked(runs["teacher"][q], 10))) / 10
                       for q in first])
    assert ndcg["student"] >= ndcg["teacher"] - STUDENT_NDCG_SLACK, ndcg
    assert overlap >= STUDENT_MIN_OVERLAP


STUDENT_NDCG_SLACK = 0.05
STUDENT_MIN_OVERLAP = 0.6


def test_fp16_autocast_needs_a_gpu(course_scorer):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="CUDA"):
        course_scorer.configured(autocast="fp16")
