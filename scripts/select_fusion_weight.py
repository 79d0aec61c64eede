"""Choose the pipeline's default fusion weight from data we are allowed to look at.

    python scripts/select_fusion_weight.py --data $COURSE_DATA_DIR [--write]

Tuning sets, both at the deployed depth (dense top 100):

* in domain — the SciFact *train* queries held out from the reranker's training (dev, listed in
  ``training.json``);
* out of domain — half of Cranfield's queries (split by query, seed 0); the other half is never
  used here, so Cranfield results can be reported on it.

A weight is *safe* if the fused pipeline is not more than 0.005 NDCG@10 below the first stage on
either set; the chosen weight is the safe one with the best mean gain over the first stage
(:func:`course_lib.course_reranker.selection.select_fusion_weight`).  No test split is read.  Cross-encoder scores are
cached (``~/.cache/course_lib/scores``).  ``--write`` records the choice in the model's
``calibration_report.json``; then set ``DEFAULT_FUSION_WEIGHT`` in ``course_lib/fusion.py`` to it.
"""
import argparse
import json

from course_lib.env import configure

configure(offline=True)

from course_lib import metrics  # noqa: E402
from course_lib.caches import ScoreCache  # noqa: E402
from course_lib.course_reranker.selection import select_fusion_weight  # noqa: E402
from course_lib.data import load_beir  # noqa: E402
from course_lib.models import course_reranker_path  # noqa: E402
from course_lib.rerank import CrossEncoderScorer  # noqa: E402
from course_lib.runs import first_stage_run, fused_run, rerank_scores  # noqa: E402

WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))


def sweep(ds, scorer, cache_name, k=100):
    cache = ScoreCache.for_scorer(scorer, cache_name)
    first = first_stage_run(ds, "dense", k)
    scores, _, n_new = rerank_scores(ds, first, scorer, cache, show_progress=True)
    by_w = {w: metrics.mean(metrics.ndcg(fused_run(first, scores, w), ds.qrels, 10)) for w in WEIGHTS}
    return by_w, metrics.mean(metrics.ndcg(first, ds.qrels, 10)), n_new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    model_dir = course_reranker_path()
    info = json.loads((model_dir / "training.json").read_text())
    scorer = CrossEncoderScorer()
    dev = load_beir("scifact", "train", data_dir=args.data).subset(info["dev_query_ids"])
    cran = load_beir("cranfield", "test", data_dir=args.data)
    tune, _ = cran.split_queries(0.5, seed=0)
    tuning, pairs = {}, 0
    for name, ds, cache_name in [("scifact-dev", dev, "scifact-dev"), ("cranfield-tune-half", tune, "cranfield")]:
        by_w, base, n_new = sweep(ds, scorer, cache_name, args.k)
        tuning[name] = (by_w, base)
        pairs += n_new
    choice = select_fusion_weight(tuning)
    out = {
        "rule": "best mean NDCG@10 gain over dense across SciFact dev and the Cranfield tune half "
                "(dense top %d), among weights with fused >= dense - 0.005 on both" % args.k,
        "k": args.k,
        "cranfield_tune_queries": sorted(tune.queries),
        **{f"{name}_dense_ndcg@10": round(base, 4) for name, (_, base) in tuning.items()},
        **{f"{name}_ndcg@10_by_weight": {str(w): round(v, 4) for w, v in by_w.items()} for name, (by_w, _) in tuning.items()},
        **choice,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "cranfield_tune_queries"}, indent=1))
    print(f"pairs scored now: {pairs}")
    if args.write:
        path = model_dir / "calibration_report.json"
        report = json.loads(path.read_text())
        report["fusion_weight_selection"] = out
        path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
