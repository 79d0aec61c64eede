"""The course reranker's figures on every collection the course has, before and after a retrain.

    python -m course_lib.instructor report --data $COURSE_DATA_DIR --models shipped runs/new [--out report.json]

For each model and collection (dense top ``--k``, NDCG@10): the first stage, the reranker alone and
the fused pipeline at the model's own fusion weight (``--weights``, default the package default for
every model).  Collections: SciFact test, Cranfield (all 225 queries and the half never used for
tuning), the course corpus's evaluation half, MedQuAD/LiveQA test and a fixed 300-query ObliQA test
subset (``course_lib.evaluation.sample_queries``, seed 0; ``--k-obliqa`` sets its depth: 30 keeps a
two-model report within minutes on a CPU) — whichever the data directory has.
Scores go through the score cache, so a second run (or ``course-lib eval`` on the same set) is quick.
This reads test splits: run it only after the model and weight were chosen on tuning data.
"""
import argparse
import json
from pathlib import Path

from course_lib.env import configure

configure(offline=True)

from course_lib import metrics  # noqa: E402
from course_lib.caches import ScoreCache  # noqa: E402
from course_lib.data import DataError, course_query_split, load_beir  # noqa: E402
from course_lib.evaluation import paired_bootstrap, sample_queries  # noqa: E402
from course_lib.fusion import DEFAULT_FUSION_WEIGHT  # noqa: E402
from course_lib.models import course_reranker_path, load_reranker  # noqa: E402
from course_lib.scorers.cross_encoder import CrossEncoderScorer  # noqa: E402
from course_lib.runs import first_stage_run, fused_run, rerank_scores  # noqa: E402


def collections(data, k, k_obliqa):
    out = []
    for name, split, n in [("scifact", "test", None), ("cranfield", "test", None), ("medquad", "test", None),
                           ("obliqa", "test", 300)]:
        try:
            ds = load_beir(name, split, data_dir=data)
        except DataError:
            continue
        if n:
            ds = sample_queries(ds, n, seed=0)
        depth = k_obliqa if name == "obliqa" else k
        out.append((f"{name}-{split}" + (f"-{n}" if n else ""), name, ds, depth))
        if name == "cranfield":
            out.append(("cranfield-unseen-half", name, ds.split_queries(0.5, seed=0)[1], k))
    _, course_eval = course_query_split()
    out.append(("course-eval-half", "course", course_eval, k))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--models", nargs="+", default=["shipped"])
    ap.add_argument("--weights", nargs="*", type=float, default=None, help="fusion weight per model")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--k-obliqa", type=int, default=None, help="depth on ObliQA (default --k)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    weights = args.weights or [DEFAULT_FUSION_WEIGHT] * len(args.models)
    sets = collections(args.data, args.k, args.k_obliqa or args.k)
    firsts = {label: first_stage_run(ds, "dense", depth) for label, _, ds, depth in sets}
    report = {"k": args.k, "collections": {}}
    # one model at several weights (--models shipped shipped --weights 0.85 0.55) is labelled by its weight
    names = args.models if len(set(args.models)) == len(args.models) else [f"{m} w={w}" for m, w in zip(args.models, weights)]
    for model, name, w in zip(args.models, names, weights):
        path = course_reranker_path() if model == "shipped" else Path(model)
        scorer = CrossEncoderScorer(load_reranker(str(path)))
        for label, cache_name, ds, depth in sets:
            first = firsts[label]
            scores, _, _ = rerank_scores(ds, first, scorer, ScoreCache.for_scorer(scorer, cache_name), show_progress=True)
            dense = metrics.ndcg(first, ds.qrels, 10)
            row = report["collections"].setdefault(label, {"n_queries": len(ds.queries), "k": depth,
                                                           "dense": round(metrics.mean(dense), 4)})
            fused = metrics.ndcg(fused_run(first, scores, w), ds.qrels, 10)
            q = sorted(dense)
            ci = paired_bootstrap([dense[x] for x in q], [fused[x] for x in q])  # fused - dense, queries resampled
            row[name] = {"alone": round(metrics.mean(metrics.ndcg(scores, ds.qrels, 10)), 4),
                         "fused": round(metrics.mean(fused), 4), "weight": w,
                         "fused_vs_dense": {k: round(ci[k], 4) for k in ("diff", "low", "high")}}
    head = "| collection | queries | top k | dense | " + " | ".join(
        f"{m}: alone / fused (fused - dense, 95% CI)" for m in names) + " |"
    print(head)
    print("|" + "---|" * (4 + len(names)))
    for label, row in report["collections"].items():
        cells = [f"{row[m]['alone']:.4f} / {row[m]['fused']:.4f} ({row[m]['fused_vs_dense']['diff']:+.4f}, "
                 f"{row[m]['fused_vs_dense']['low']:+.4f}..{row[m]['fused_vs_dense']['high']:+.4f})" for m in names]
        print(f"| {label} | {row['n_queries']} | {row['k']} | {row['dense']:.4f} | " + " | ".join(cells) + " |")
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
