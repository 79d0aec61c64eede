import json

import pytest
import torch

from course_lib.training import (
    DomainSpecificReranker,
    TrainingRecordError,
    load_records,
    mine_hard_negatives,
)


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


@pytest.mark.slow
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


def test_listwise_groups_records_by_query_and_positive():
    recs = [{"query": "q", "positive_doc": "p", "negative_doc": n} for n in ("a", "b", "a")]
    recs.append({"query": "q", "positive_doc": "p2", "negative_doc": "c"})
    dsr = DomainSpecificReranker(object(), records=recs, loss="listwise")
    rows = dsr._dataset(recs).to_dict()
    assert rows["docs"] == [["p", "a", "b"], ["p2", "c"]] and rows["labels"] == [[1.0, 0.0, 0.0], [1.0, 0.0]]


@pytest.mark.slow
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
