"""course_lib.bench and the shipped benchmark records notebook 05 reads."""
import gzip
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "eval_cache" / "bench"


@pytest.mark.parametrize("name", ["scifact-test-k30-q50.json", "course-k30.json", "scifact-test-k30-q50-repeat2.json",
                                  "scifact-test-k30-q50-h200.json", "scifact-test-k30-q50-onnx.json",
                                  "scifact-test-k30-q50-host.json"])
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


def test_bench_reranks_a_given_first_stage_run(course_ds, overlap_scorer, tmp_path):
    """``first=`` (``course-lib bench --run FILE``): the run's top k is what every variant reranks."""
    from course_lib.bench import bench
    from course_lib.optimize import scorer_rank
    from course_lib.runs import first_stage_run, read_trec, write_trec

    ds = course_ds.subset(sorted(course_ds.queries)[:3])
    write_trec(first_stage_run(ds, "bm25", 8), tmp_path / "bm25.trec", "bm25")
    first = read_trec(tmp_path / "bm25.trec")
    res = bench(ds, k=5, variants={"same": scorer_rank(overlap_scorer)}, naive=scorer_rank(overlap_scorer),
                show_progress=False, first=first)
    assert res["first_stage"] == "run file" and res["n_queries"] == 3
    assert res["variants"][0]["top10_identical"] == 1.0
    with pytest.raises(ValueError, match="no candidates"):
        bench(course_ds.subset(sorted(course_ds.queries)[:4]), k=5, variants={}, naive=scorer_rank(overlap_scorer),
              show_progress=False, first=first)


def test_read_trec_names_the_bad_line(tmp_path):
    from course_lib.runs import read_trec

    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1 0.5 tag\nq1 Q0 d2 2 high tag\n")
    with pytest.raises(ValueError, match="line 2"):
        read_trec(tmp_path / "bad.trec")


def test_bench_reports_the_naive_loop_and_each_variant(course_ds, overlap_scorer):
    from course_lib.bench import bench
    from course_lib.optimize import scorer_rank

    ds = course_ds.subset(sorted(course_ds.queries)[:4])
    res = bench(ds, k=5, variants={"same": scorer_rank(overlap_scorer)}, first_stage="bm25",
                show_progress=False, naive=scorer_rank(overlap_scorer))
    assert res["n_queries"] == 4 and res["k"] == 5
    row = res["variants"][0]
    assert set(row) >= {"name", "pairs_per_s", "ms_per_query", "speedup", "p50_ms", "p95_ms", "ndcg@10",
                        "top10_identical", "top10_set_identical", "top10_overlap", "peak_mb"}
    assert row["top10_identical"] == 1.0 and row["ndcg@10"] == res["naive"]["ndcg@10"]
    with pytest.raises(ValueError, match="unknown variant"):
        from course_lib.optimize import bench_variants

        bench_variants(["warp drive"])


def test_bench_repeat_replays_the_stream_and_a_pair_cache_scores_each_pair_once(course_ds, overlap_scorer):
    from course_lib.bench import bench
    from course_lib.caches import LRUScoreCache
    from course_lib.optimize import scorer_rank
    from course_lib.scorers.cached import CachedScorer

    ds = course_ds.subset(sorted(course_ds.queries)[:3])
    counted = CachedScorer(overlap_scorer, LRUScoreCache(maxsize=1000))
    seen = []
    inner = overlap_scorer.score_pairs

    def counting(pairs):
        seen.extend(pairs)
        return inner(pairs)

    overlap_scorer.score_pairs = counting
    res = bench(ds, k=4, variants={"pair cache": scorer_rank(counted)}, first_stage="bm25", show_progress=False,
                naive=lambda q, texts, first: list(first), repeat=3)
    assert res["repeat"] == 3 and res["n_queries"] == 3
    # warm-up (1 query, never primes the cache) + each of 3 queries' 4 pairs once, not three times
    assert len(seen) == 4 + 3 * 4 and len(set(seen)) == len(seen)
    assert res["variants"][0]["pairs_per_s"] > 0


def test_shipped_host_record_names_its_three_ways():
    res = json.loads((BENCH / "scifact-test-k30-q50-host.json").read_text())
    rows = {r["name"]: r for r in res["host"]["rows"]}
    assert set(rows) == {"naive loop", "course scorer, before", "course scorer"} and res["host"]["max_length"] == 192
    assert rows["naive loop"]["vs_naive"] == 1.0 and all(r["pairs_per_s"] > 0 for r in rows.values())


def test_host_bench_runs_every_way_on_the_same_pairs(course_scorer, monkeypatch):
    from course_lib import bench as bench_module

    seen = []
    real = course_scorer.host_pass
    monkeypatch.setattr(course_scorer, "host_pass", lambda pairs: seen.append(len(pairs)) or real(pairs))
    pairs = [("what is a cat", "a cat is a small mammal " * 60), ("q", "short")] * 3
    res = bench_module.host_bench(pairs, scorer=course_scorer, min_seconds=0.0)
    assert [r["name"] for r in res["rows"]] == ["naive loop", "course scorer, before", "course scorer"]
    assert res["pairs"] == 6 and set(seen) == {6} and len(seen) >= 3  # warm-up and at least two timed passes
    assert bench_module._library_host(course_scorer.model, pairs, 4) == 6 == bench_module._host_before(course_scorer, pairs)
