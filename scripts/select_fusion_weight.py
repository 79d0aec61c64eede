"""Choose the course reranker and the pipeline's fusion weight from data we are allowed to look at.

    python -m course_lib.instructor fusion-weight --data $COURSE_DATA_DIR [--model DIR] [--out FILE] [--write]

Tuning sets, all at the deployed depth (dense top 100), none of them a reported test set:

* in domain — the SciFact *train* queries held out from the reranker's training (dev, listed in
  ``training.json``);
* out of domain — half of Cranfield's queries (split by query, seed 0); the other half is never
  used here, so Cranfield results can be reported on it;
* consumer health — a fixed slice of 100 MedQuAD *train* questions held out of training
  (:func:`course_lib.domains.benchmark.medquad_tuning_split`, seed 0), when ``medquad`` is in
  the data directory; dense top ``--k-medquad`` (default 30: each has one answer, and its long
  passages make top 100 slow on a CPU).

Fusion weight: a weight is *safe* if the fused pipeline is not below the first stage on any set
(``--tolerance``, default 0; it was 0.005 until the MedQuAD-trained model, and was set to 0 before
that model's test figures were read, because the course's goal is a fused default that never loses
to its first stage); the chosen weight is the safe one with the best mean gain over the first
stage (:func:`course_lib.instructor.selection.select_fusion_weight`).

Model (rule fixed before any test figure of a candidate is read): a retrained model replaces the
shipped one if its *reranker-alone* gain over dense, averaged over the tuning sets, is higher, and it
is not more than 0.01 below the shipped model alone on any tuning set
(:func:`course_lib.instructor.selection.prefer_model`; run this script on both and pass
``--compare`` the shipped model's ``--out`` file).

No test split is read.  Cross-encoder scores are cached (``~/.cache/course_lib/scores``).
``--write`` records the choice in the model's ``calibration_report.json``; then set
``DEFAULT_FUSION_WEIGHT`` in ``course_lib/fusion.py`` to it.
"""
import argparse
import json
from pathlib import Path

from course_lib.env import configure

configure(offline=True)

from course_lib import metrics  # noqa: E402
from course_lib.caches import ScoreCache  # noqa: E402
from course_lib.domains.benchmark import medquad_tuning_split  # noqa: E402
from course_lib.instructor.selection import prefer_model, select_fusion_weight  # noqa: E402
from course_lib.data import DataError, load_beir  # noqa: E402
from course_lib.models import course_reranker_path  # noqa: E402
from course_lib.models import load_reranker  # noqa: E402
from course_lib.scorers.cross_encoder import CrossEncoderScorer  # noqa: E402
from course_lib.runs import first_stage_run, fused_run, rerank_scores  # noqa: E402

WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))


def sweep(ds, scorer, cache_name, k=100):
    cache = ScoreCache.for_scorer(scorer, cache_name)
    first = first_stage_run(ds, "dense", k)
    scores, _, n_new = rerank_scores(ds, first, scorer, cache, show_progress=True)
    by_w = {w: metrics.mean(metrics.ndcg(fused_run(first, scores, w), ds.qrels, 10)) for w in WEIGHTS}
    alone = metrics.mean(metrics.ndcg(scores, ds.qrels, 10))
    return by_w, metrics.mean(metrics.ndcg(first, ds.qrels, 10)), alone, n_new


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--k-medquad", type=int, default=30)
    ap.add_argument("--model", default=None, help="model directory (default: the shipped course reranker)")
    ap.add_argument("--out", default=None, help="also write the result here (JSON)")
    ap.add_argument("--compare", default=None, help="the shipped model's --out file: apply the model rule")
    ap.add_argument("--tolerance", type=float, default=0.0, help="how far below dense a safe weight may be")
    ap.add_argument("--sets", nargs="*", default=None,
                    help="only these tuning sets (scifact-dev, cranfield-tune-half, medquad-tune)")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    model_dir = Path(args.model) if args.model else course_reranker_path()
    info = json.loads((model_dir / "training.json").read_text())
    scorer = CrossEncoderScorer(load_reranker(str(model_dir)))
    dev = load_beir("scifact", "train", data_dir=args.data).subset(info["dev_query_ids"])
    cran = load_beir("cranfield", "test", data_dir=args.data)
    tune, _ = cran.split_queries(0.5, seed=0)
    sets = [("scifact-dev", dev, "scifact-dev", args.k), ("cranfield-tune-half", tune, "cranfield", args.k)]
    try:
        _, mq_tune = medquad_tuning_split(load_beir("medquad", "train", data_dir=args.data))
        sets.append(("medquad-tune", mq_tune, "medquad", args.k_medquad))
    except DataError:
        print("no medquad in the data directory: tuning on SciFact dev and Cranfield only")
    if args.sets:
        sets = [x for x in sets if x[0] in args.sets]
    tuning, alone, pairs = {}, {}, 0
    for name, ds, cache_name, k in sets:
        by_w, base, alone[name], n_new = sweep(ds, scorer, cache_name, k)
        tuning[name] = (by_w, base)
        pairs += n_new
    choice = select_fusion_weight(tuning, tolerance=args.tolerance)
    out = {
        "rule": "best mean NDCG@10 gain over dense across %s (dense top %s), among weights with fused >= "
                "dense - %g on every set" % (", ".join(tuning), "/".join(str(k) for *_, k in sets), args.tolerance),
        "k": {name: k for name, _, _, k in sets},
        "model": model_dir.name,
        "cranfield_tune_queries": sorted(tune.queries),
        **{f"{name}_dense_ndcg@10": round(base, 4) for name, (_, base) in tuning.items()},
        **{f"{name}_reranker_alone_ndcg@10": round(v, 4) for name, v in alone.items()},
        **{f"{name}_ndcg@10_by_weight": {str(w): round(v, 4) for w, v in by_w.items()} for name, (by_w, _) in tuning.items()},
        **choice,
    }
    print(json.dumps({k: v for k, v in out.items() if k != "cranfield_tune_queries"}, indent=1))
    print(f"pairs scored now: {pairs}")
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))
    if args.compare:
        verdict = prefer_model(json.loads(Path(args.compare).read_text()), out)
        print(json.dumps(verdict, indent=1))
    if args.write:
        path = model_dir / "calibration_report.json"
        report = json.loads(path.read_text())
        report["fusion_weight_selection"] = out
        path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
