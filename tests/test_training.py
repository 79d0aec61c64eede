import json
import time

import pytest
import torch

from helpers import write_course_as_beir

from course_lib.training import DomainSpecificReranker, TrainingRecordError, load_records, mine_hard_negatives


def test_recipe_smoke_trains_and_changes_scores(tmp_path, course_ds, monkeypatch):
    from sentence_transformers import CrossEncoder

    from course_lib.course_reranker.recipe import RecipeConfig, train_reranker

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    write_course_as_beir(course_ds, tmp_path / "data" / "course", split="train")
    t = time.time()
    cfg = RecipeConfig(n_pseudo=4, max_length=64, groups_per_step=2, lr=1e-4, dev_fraction=0.2, bf16=False)
    info = train_reranker(tmp_path / "data", tmp_path / "model", dataset="course", cfg=cfg, max_groups=6, show_progress=False)
    assert time.time() - t < 60
    assert info["n_groups"] == 6 and info["dev_query_ids"]
    ce = CrossEncoder(str(tmp_path / "model"))
    from course_lib.course_reranker.modeling import from_bi_encoder
    from course_lib.models import bundled_embedder_path

    base = from_bi_encoder(str(bundled_embedder_path())).eval()
    enc = ce.tokenizer(["why is the sky blue"], ["rayleigh scattering"], return_tensors="pt")
    with torch.no_grad():
        before = base(**enc).logits.item()
        after = ce[0].auto_model(**enc).logits.item()
    assert before != pytest.approx(after, abs=1e-4)


def write_records(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records))
    return path


def test_malformed_records_name_the_record(tmp_path):
    good = {"query": "q", "positive_doc": "p", "negative_doc": "n"}
    with pytest.raises(TrainingRecordError, match=r"record 1 is missing field 'negative_doc'"):
        load_records(write_records(tmp_path / "a.jsonl", [good, {"query": "q", "positive_doc": "p"}]))
    with pytest.raises(TrainingRecordError, match=r"record 0 has an empty or non-text 'positive_doc'"):
        load_records(write_records(tmp_path / "b.jsonl", [{**good, "positive_doc": "  "}]))
    (tmp_path / "c.jsonl").write_text('{"query": "q"\n')
    with pytest.raises(TrainingRecordError, match=r"c.jsonl:1: not valid JSON"):
        load_records(tmp_path / "c.jsonl")
    with pytest.raises(TrainingRecordError, match="not found"):
        load_records(tmp_path / "missing.json")


def test_mined_negatives_exclude_positives_and_report_skips(course_ds):
    records, report = mine_hard_negatives(course_ds, n_hard=2, n_random=1, margin=0.05, seed=0)
    assert report["negatives"] == len(records) > 0
    pos_by_q = {}
    for q, judged in course_ds.qrels.items():
        pos_by_q[course_ds.queries[q]] = {course_ds.doc_text(d) for d, g in judged.items() if g > 0}
    for r in records:
        assert r["negative_doc"] not in pos_by_q[r["query"]]
    assert report["suspected_false_negatives_skipped"] >= 0


@pytest.mark.parametrize("loss", ["bce", "listwise"])
def test_domain_fine_tune_few_steps_changes_scores_and_reports(tmp_path, course_ds, loss):
    records, _ = mine_hard_negatives(course_ds, n_hard=2, n_random=0, seed=0)
    dsr = DomainSpecificReranker(None, records=records[:40], loss=loss, heldout_fraction=0.25, max_length=64, seed=0)
    probe = ("What is compound interest?", "Interest on interest makes savings grow.")
    before = float(dsr.model.predict([probe], activation_fn=torch.nn.Identity())[0])
    rep = dsr.fine_tune(tmp_path / "ft", epochs=1, batch_size=4, learning_rate=5e-5, max_steps=3, show_progress=False)
    after = float(dsr.model.predict([probe], activation_fn=torch.nn.Identity())[0])
    assert rep["steps"] == 3 and rep["heldout_queries"] >= 1
    assert before != pytest.approx(after, abs=1e-4)
    assert {"mrr_before", "mrr_after", "constant_predictor", "worse_than_start"} <= set(rep)
    assert (tmp_path / "ft" / "config.json").is_file()
    # the shared cached course reranker was not touched by training
    from course_lib.models import load_reranker

    shared = float(load_reranker().predict([probe], activation_fn=torch.nn.Identity())[0])
    assert shared == pytest.approx(before, abs=1e-4)


def test_graded_groups_put_a_top_grade_answer_above_lower_grades(course_ds):
    import random

    from course_lib.data import course_query_split
    from course_lib.dense import DenseIndex
    from course_lib.course_reranker.recipe import RecipeConfig, graded_groups

    train, held_out = course_query_split(course_ds)
    index = DenseIndex.build(train.corpus, cache_key="course", show_progress=False)
    groups = graded_groups(train, index, RecipeConfig(), random.Random(0), repeats=2, show_progress=False)
    text_to_id = {train.doc_text(d): d for d in train.corpus}
    by_query = {train.queries[q]: q for q in train.queries}
    assert groups and {g.query for g in groups} <= set(by_query)  # never an eval-half query
    assert not {g.query for g in groups} & set(held_out.queries.values())
    for g in groups:
        judged = train.qrels[by_query[g.query]]
        grades = [judged.get(text_to_id[d], 0) for d in g.docs]
        assert grades[0] == max(judged.values())
        assert all(x < grades[0] for x in grades[1:]) and len(g.docs) == len(g.teacher) == 5
    n_answers = sum(1 for q in train.queries for g in train.qrels[q].values() if g == 2)
    assert len(groups) == 2 * n_answers


def test_listwise_groups_records_by_query_and_positive():
    recs = [{"query": "q", "positive_doc": "p", "negative_doc": n} for n in ("a", "b", "a")]
    recs.append({"query": "q", "positive_doc": "p2", "negative_doc": "c"})
    dsr = DomainSpecificReranker(object(), records=recs, loss="listwise")
    rows = dsr._dataset(recs).to_dict()
    assert rows["docs"] == [["p", "a", "b"], ["p2", "c"]] and rows["labels"] == [[1.0, 0.0, 0.0], [1.0, 0.0]]


def test_group_softmax_cross_entropy_puts_all_mass_on_positives():
    from course_lib.losses import group_softmax_cross_entropy

    logits = torch.tensor([2.0, 1.0, -1.0])
    expected = -torch.log_softmax(logits, 0)[0]
    assert group_softmax_cross_entropy(logits, [1, 0, 0]).item() == pytest.approx(expected.item())
    two = group_softmax_cross_entropy(logits, [1, 1, 0]).item()
    assert two == pytest.approx(-0.5 * torch.log_softmax(logits, 0)[:2].sum().item())
    with pytest.raises(ValueError, match="positive"):
        group_softmax_cross_entropy(logits, [0, 0, 0])


def test_bf16_fine_tune_returns_the_model_it_saved(tmp_path, course_ds):
    """Mixed precision trains under autocast; the returned model must score as the saved fp32 weights."""
    from sentence_transformers import CrossEncoder

    records, _ = mine_hard_negatives(course_ds, n_hard=2, n_random=0, seed=0)
    dsr = DomainSpecificReranker(None, records=records[:24], loss="listwise", heldout_fraction=0.25, max_length=64, seed=0)
    rep = dsr.fine_tune(tmp_path / "ft", epochs=1, batch_size=4, max_steps=2, show_progress=False, bf16=True)
    assert rep["bf16"] is True
    pairs = [(r["query"], r["positive_doc"]) for r in records[:6]]
    here = dsr.model.predict(pairs, activation_fn=torch.nn.Identity())
    saved = CrossEncoder(str(tmp_path / "ft"), max_length=64, device="cpu").predict(pairs, activation_fn=torch.nn.Identity())
    assert here == pytest.approx(saved, abs=1e-4)


def test_reranker_mined_negatives_are_its_near_misses_below_the_positive(course_ds, overlap_scorer):
    import random

    from course_lib.dense import DenseIndex
    from course_lib.course_reranker.recipe import RecipeConfig, label_groups

    index = DenseIndex.build(course_ds.corpus, cache_key="course", show_progress=False)
    cfg = RecipeConfig(neg_miner="reranker", n_negatives=4, reranker_pool=3, neg_ranks=(3, 15))
    groups = label_groups(course_ds, index, cfg, random.Random(0), show_progress=False, reranker=overlap_scorer)
    dense = label_groups(course_ds, index, RecipeConfig(neg_ranks=(3, 15)), random.Random(0), show_progress=False)
    assert groups and len(groups) == len(dense)
    text_to_id = {course_ds.doc_text(d): d for d in course_ds.corpus}
    by_query = {course_ds.queries[q]: q for q in course_ds.queries}
    qids = sorted(course_ds.queries)
    from course_lib.dense import encode_texts

    hits = dict(zip(qids, index.search_vectors(encode_texts([course_ds.queries[q] for q in qids], index.embedder, show_progress=False), 15)))
    with_pool = 0
    for g in groups:
        qid = by_query[g.query]
        judged = course_ds.qrels[qid]
        ids = [text_to_id[d] for d in g.docs]
        assert judged.get(ids[0], 0) > 0 and all(judged.get(d, 0) <= 0 for d in ids[1:])
        assert len(set(ids)) == len(ids) and len(g.teacher) == len(ids)
        # the reranker's near misses: its top-scored non-relevant candidates that it puts below the positive
        score = lambda d: float(overlap_scorer.score_pairs([(g.query, course_ds.doc_text(d))])[0])
        near = sorted((d for d, _ in hits[qid] if judged.get(d, 0) <= 0), key=lambda d: -score(d))
        near = [d for d in near if score(d) < score(ids[0])][:3]
        if near:
            with_pool += 1
            assert set(ids[1:]) & set(near)
    assert with_pool >= len(groups) // 2
