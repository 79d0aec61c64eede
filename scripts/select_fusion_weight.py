"""Choose the pipeline's default fusion weight from data we are allowed to look at.

    python scripts/select_fusion_weight.py --data $COURSE_DATA_DIR [--write]

In-domain: SciFact *train* queries held out from the reranker's training (dev), dense top 30,
from ``calibration_report.json``.  Guard: half of Cranfield's queries (split by query, seed 0),
dense top 100 — the other half is never used here, so Cranfield results can be reported on it.
A weight is *safe* if the fused pipeline is not more than 0.005 NDCG@10 below the first stage
on the guard half; the chosen weight is the best safe one on the dev set.  Cross-encoder scores
come from the evaluation cache (``course-lib eval`` on Cranfield fills it).  ``--write`` records
the choice in the model's ``calibration_report.json``.
"""
import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from course_lib import metrics
from course_lib.data import load_beir
from course_lib.dense import cache_dir
from course_lib.evaluation import ScoreCache, first_stage_run, fused_run, model_fingerprint, rerank_scores
from course_lib.models import course_reranker_path
from course_lib.recipe import select_fusion_weight
from course_lib.rerank import CrossEncoderScorer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    report_path = course_reranker_path() / "calibration_report.json"
    report = json.loads(report_path.read_text())
    dev = {float(w): v for w, v in report["dev_ndcg@10_by_fusion_weight"].items()}
    cran = load_beir("cranfield", "test", data_dir=args.data)
    tune, held = cran.split_queries(0.5, seed=0)
    scorer = CrossEncoderScorer()
    cache = ScoreCache(cache_dir() / "scores" / f"{model_fingerprint(scorer)}-{cran.name}.json.gz")
    first = first_stage_run(tune, "dense", 100)
    scores, _, n_new = rerank_scores(tune, first, scorer, cache, show_progress=True)
    sweep = {w: metrics.mean(metrics.ndcg(fused_run(first, scores, w), tune.qrels, 10)) for w in dev}
    base = metrics.mean(metrics.ndcg(first, tune.qrels, 10))
    choice = select_fusion_weight(dev, {"cranfield-tune-half": (sweep, base)})
    out = {
        "rule": "best SciFact-dev NDCG@10 among weights with Cranfield tune-half fused >= dense - 0.005",
        "cranfield_tune_queries": sorted(tune.queries),
        "cranfield_tune_dense_ndcg@10": round(base, 4),
        "cranfield_tune_ndcg@10_by_weight": {str(w): round(v, 4) for w, v in sweep.items()},
        **{k: v for k, v in choice.items()},
    }
    print(json.dumps({k: v for k, v in out.items() if k != "cranfield_tune_queries"}, indent=1))
    print(f"pairs scored now: {n_new}")
    if args.write:
        report["fusion_weight_selection"] = out
        report_path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
