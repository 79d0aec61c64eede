"""course_lib.bench and the shipped benchmark records notebook 05 reads."""
import gzip
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "eval_cache" / "bench"


@pytest.mark.parametrize("name", ["scifact-test-k30-q50.json", "course-k30.json", "scifact-test-k30-q50-repeat2.json"])
def test_shipped_bench_records_have_every_field(name):
    res = json.loads((BENCH / name).read_text())
    assert {"dataset", "split", "k", "n_queries", "naive", "variants", "machine"} <= set(res)
    for row in [res["naive"], *res["variants"]]:
        assert {"name", "pairs_per_s", "ms_per_query", "speedup", "p50_ms", "p95_ms", "ndcg@10", "top10_identical",
                "top10_set_identical", "top10_overlap", "peak_mb"} <= set(row)
        assert 0 <= row["top10_overlap"] <= 1 and row["speedup"] > 0
    assert res["naive"]["speedup"] == 1.0 and res["naive"]["top10_identical"] == 1.0


def test_shipped_scifact_bench_ndcg_matches_the_shipped_scores(shared_data, course_scorer):
    """The naive loop's NDCG@10 in the record, recomputed from the shipped score cache (no timing)."""
    from course_lib import metrics
    from course_lib.data import load_beir
    from course_lib.runs import first_stage_run

    res = json.loads((BENCH / "scifact-test-k30-q50.json").read_text())
    ds = load_beir("scifact", "test", data_dir=shared_data)
    ds = ds.subset(sorted(ds.queries)[: res["n_queries"]])
    first = first_stage_run(ds, "dense", res["k"])
    with gzip.open(ROOT / "eval_cache" / "scores" / f"{course_scorer.fingerprint()}-scifact.json.gz", "rt") as fh:
        cache = json.load(fh)
    run = {q: {d: cache[ds.queries[q]][d] for d in c} for q, c in first.items()}
    assert metrics.mean(metrics.ndcg(run, ds.qrels, 10)) == pytest.approx(res["naive"]["ndcg@10"], abs=2e-3)
