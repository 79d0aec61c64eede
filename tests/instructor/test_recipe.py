import pytest
import torch
from helpers import write_course_as_beir


@pytest.mark.slow
def test_recipe_smoke_trains_and_changes_scores(tmp_path, course_ds, monkeypatch):
    from sentence_transformers import CrossEncoder

    from course_lib.instructor.recipe import RecipeConfig, train_reranker

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    write_course_as_beir(course_ds, tmp_path / "data" / "course", split="train")
    cfg = RecipeConfig(n_pseudo=4, max_length=64, groups_per_step=2, lr=1e-4, dev_fraction=0.2, bf16=False)
    info = train_reranker(tmp_path / "data", tmp_path / "model", dataset="course", cfg=cfg, max_groups=6, show_progress=False)
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


def test_graded_groups_put_a_top_grade_answer_above_lower_grades(course_ds):
    import random

    from course_lib.data import course_query_split
    from course_lib.dense import DenseIndex
    from course_lib.instructor.recipe import RecipeConfig, graded_groups

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


def test_reranker_mined_negatives_are_its_near_misses_below_the_positive(course_ds, overlap_scorer):
    import random

    from course_lib.dense import DenseIndex
    from course_lib.instructor.recipe import RecipeConfig, label_groups

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


@pytest.mark.slow
def test_recipe_adds_medquad_and_other_corpora_and_holds_out_the_tuning_slice(tmp_path, course_ds, monkeypatch):
    from course_lib.instructor.recipe import RecipeConfig, train_reranker

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    write_course_as_beir(course_ds, tmp_path / "data" / "course", split="train")
    write_course_as_beir(course_ds, tmp_path / "data" / "medquad", split="train")  # stands in for MedQuAD
    titled = course_ds.subset(sorted(course_ds.queries))
    for d, doc in titled.corpus.items():  # a corpus whose titles make pseudo-queries
        doc["title"] = " ".join(doc["text"].split()[:6])
    write_course_as_beir(titled, tmp_path / "data" / "other", split="test")
    cfg = RecipeConfig(n_pseudo=0, course_repeats=0, max_length=64, groups_per_step=2, bf16=False, dev_fraction=0.2,
                       medquad_groups=5, medquad_tune=4, pseudo_corpora=("other",), n_pseudo_extra=3)
    info = train_reranker(tmp_path / "data", tmp_path / "model", dataset="course", cfg=cfg, max_groups=4,
                          show_progress=False)
    assert info["n_extra_groups"]["other-pseudo"] == 3
    assert info["n_extra_groups"]["medquad-train"] >= 5  # one group per judged answer of 5 questions
    assert len(info["medquad_tune_query_ids"]) == 4


def test_medquad_tuning_slice_is_fixed_and_disjoint(course_ds):
    from course_lib.domains.benchmark import medquad_tuning_split

    train, tune = medquad_tuning_split(course_ds, 5)
    again = medquad_tuning_split(course_ds, 5)[1]
    assert len(tune.queries) == 5 and sorted(tune.queries) == sorted(again.queries)
    assert not set(tune.queries) & set(train.queries)


def test_a_missing_extra_corpus_is_a_clear_error(tmp_path):
    from course_lib.instructor.recipe import _dataset_beside

    (tmp_path / "scifact").mkdir()
    with pytest.raises(FileNotFoundError, match="'medquad' not found beside"):
        _dataset_beside(tmp_path, "scifact", "medquad")
    (tmp_path / "medquad").mkdir()
    assert _dataset_beside(tmp_path / "scifact", "scifact", "medquad") == tmp_path / "medquad"
