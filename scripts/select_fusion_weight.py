"""Choose the course reranker and the pipeline's fusion weight from data we are allowed to look at.

    python -m course_lib.instructor fusion-weight --data $COURSE_DATA_DIR [--model DIR] [--out FILE] [--write]

Tuning sets, none of them a reported test set (dense top 100 unless stated):

* in domain — the SciFact *train* queries held out from the reranker's training (dev, listed in
  ``training.json``);
* out of domain — half of Cranfield's queries (split by query, seed 0); the other half is never
  used here, so Cranfield results can be reported on it;
* consumer health — a fixed slice of 100 MedQuAD *train* questions held out of training
  (:func:`course_lib.domains.benchmark.medquad_tuning_split`, seed 0), when ``medquad`` is in
  the data directory; dense top ``--k-medquad`` (default 30: each has one answer, and its long
  passages make top 100 slow on a CPU);
* financial regulation — 2,488 of ObliQA's 2,788 *dev* questions (seed 0; the other 300 are left out for
  quick checks), when ``obliqa`` is in the data directory; dense top 30 (``--k-obliqa``).

Fusion weight: a weight is *safe* if the fused pipeline is not below the first stage on any set
(``--tolerance``, default 0); among safe weights the rule (``--rule``, fixed before any test figure was
read, :func:`course_lib.instructor.selection.select_fusion_weight`) is **max-min** since issue #27: the
weight whose *worst* gain over the first stage across the sets is highest, and among those within 0.002 of
it the smallest — the fused default must not lose to its first stage on kinds of text it was not tuned
on, and the mean gain (the rule up to stage 6, ``--rule mean``) let the in-domain sets pull the weight
towards the reranker (0.85, below the first stage on Cranfield and on the course corpus).

Model (rule fixed before any test figure of a candidate is read): a retrained model replaces the
shipped one if its *reranker-alone* gain over dense, averaged over the tuning sets, is higher, and it
is not more than 0.01 below the shipped model alone on any tuning set
(:func:`course_lib.instructor.selection.prefer_model`; run this script on both and pass
``--compare`` the shipped model's ``--out`` file).

Other fusion families are measured beside the z-score weights (``alternatives_worst_gain`` in the output):
weighted reciprocal-rank fusion, min-max fusion, and per-query weights that follow the reranker's confidence
(its top logit) or the two stages' agreement (Spearman's rho of their orders).  The rule, fixed before any
test figure was read: z-score fusion stays unless an alternative's worst-set gain is higher by more than
0.005 (query-sampling noise on 100-300 queries).

No test split is read.  Cross-encoder scores are cached (``~/.cache/course_lib/scores``).
``--write`` records the choice in the model's ``calibration_report.json``; then set
``DEFAULT_FUSION_WEIGHT`` in ``course_lib/fusion.py`` to it.
"""
import argparse
import json
from pathlib import Path

from course_lib.env import configure

configure(offline=True)

import numpy as np  # noqa: E402

from course_lib import metrics  # noqa: E402
from course_lib.caches import ScoreCache  # noqa: E402
from course_lib.domains.benchmark import medquad_tuning_split  # noqa: E402
from course_lib.fusion import zscore  # noqa: E402
from course_lib.instructor.selection import prefer_model, select_fusion_weight  # noqa: E402
from course_lib.data import DataError, load_beir  # noqa: E402
from course_lib.models import course_reranker_path  # noqa: E402
from course_lib.models import load_reranker  # noqa: E402
from course_lib.scorers.cross_encoder import CrossEncoderScorer  # noqa: E402
from course_lib.runs import first_stage_run, fused_run, rerank_scores  # noqa: E402

WEIGHTS = tuple(round(0.05 * i, 2) for i in range(21))


def _z(v):
    return np.asarray(zscore(v))


def _ranks(v):
    return np.argsort(np.argsort(-np.asarray(v, dtype=float))) + 1


def _minmax(v):
    v = np.asarray(v, dtype=float)
    return np.zeros_like(v) if np.ptp(v) < 1e-12 else (v - v.min()) / np.ptp(v)


def _adaptive(signal, lo, hi):
    def rule(r, f):
        w = lo + (hi - lo) * signal(r, f)
        return w * _z(r) + (1 - w) * _z(f)
    return rule


def _confidence(r, f):  # how sure the reranker is that its best candidate is relevant
    return 1.0 / (1.0 + np.exp(-np.max(r)))


def _agreement(r, f):  # Spearman's rho of the two stages' orders, negative as 0
    return max(0.0, float(np.corrcoef(_ranks(r), _ranks(f))[0, 1])) if len(r) > 2 else 1.0


def alternatives() -> dict:
    """Per-query fusion rules of other families, by name: ``rule(rerank logits, first-stage scores) -> scores``."""
    out = {}
    for w in WEIGHTS[6:20]:  # 0.3 .. 0.95
        out[f"rrf w={w}"] = lambda r, f, w=w: w / (60 + _ranks(r)) + (1 - w) / (60 + _ranks(f))
        out[f"minmax w={w}"] = lambda r, f, w=w: w * _minmax(r) + (1 - w) * _minmax(f)
    for lo in (0.2, 0.3, 0.4, 0.5):
        for hi in (0.7, 0.8, 0.9, 1.0):
            out[f"confidence {lo}-{hi}"] = _adaptive(_confidence, lo, hi)
            out[f"agreement {lo}-{hi}"] = _adaptive(_agreement, lo, hi)
    return out


def apply_rule(rule, first, scores):
    out = {}
    for q, cands in first.items():
        docs = list(cands)
        fused = rule(np.array([scores[q][d] for d in docs]), np.array([cands[d] for d in docs]))
        out[q] = dict(zip(docs, (float(x) for x in fused)))
    return out


def sweep(ds, scorer, cache_name, k=100):
    cache = ScoreCache.for_scorer(scorer, cache_name)
    first = first_stage_run(ds, "dense", k)
    scores, _, n_new = rerank_scores(ds, first, scorer, cache, show_progress=True)
    by_w = {w: metrics.mean(metrics.ndcg(fused_run(first, scores, w), ds.qrels, 10)) for w in WEIGHTS}
    alone = metrics.mean(metrics.ndcg(scores, ds.qrels, 10))
    alt = {name: metrics.mean(metrics.ndcg(apply_rule(rule, first, scores), ds.qrels, 10))
           for name, rule in alternatives().items()}
    return by_w, metrics.mean(metrics.ndcg(first, ds.qrels, 10)), alone, n_new, alt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--k-medquad", type=int, default=30)
    ap.add_argument("--k-obliqa", type=int, default=30)
    ap.add_argument("--rule", choices=("max-min", "mean"), default="max-min")
    ap.add_argument("--model", default=None, help="model directory (default: the shipped course reranker)")
    ap.add_argument("--out", default=None, help="also write the result here (JSON)")
    ap.add_argument("--compare", default=None, help="the shipped model's --out file: apply the model rule")
    ap.add_argument("--tolerance", type=float, default=0.0, help="how far below dense a safe weight may be")
    ap.add_argument("--sets", nargs="*", default=None,
                    help="only these tuning sets (scifact-dev, cranfield-tune-half, medquad-tune, obliqa-dev)")
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
        print("no medquad in the data directory: tuning without consumer-health questions")
    try:
        ob = load_beir("obliqa", "dev", data_dir=args.data)
        ob_tune, _ = ob.split_queries(300 / len(ob.queries), seed=0)  # 2,488 questions; 300 left for quick checks
        sets.append(("obliqa-dev", ob_tune, "obliqa-dev", args.k_obliqa))
    except DataError:
        print("no obliqa in the data directory: tuning without regulatory questions")
    if args.sets:
        sets = [x for x in sets if x[0] in args.sets]
    tuning, alone, alt, pairs = {}, {}, {}, 0
    for name, ds, cache_name, k in sets:
        by_w, base, alone[name], n_new, alt[name] = sweep(ds, scorer, cache_name, k)
        tuning[name] = (by_w, base)
        pairs += n_new
    choice = select_fusion_weight(tuning, tolerance=args.tolerance, rule=args.rule)
    alt_worst = {a: round(min(alt[n][a] - tuning[n][1] for n in tuning), 4) for a in alternatives()}
    best_alt = max(alt_worst, key=alt_worst.get)
    z_worst = max(min(sweep_[w] - base for sweep_, base in tuning.values()) for w in WEIGHTS)
    family = {"z-score worst gain (best weight)": round(z_worst, 4), "best alternative": best_alt,
              "its worst gain": alt_worst[best_alt],
              "z-score stays": alt_worst[best_alt] <= z_worst + 0.005}
    what = ("the highest worst-set NDCG@10 gain over dense (the smallest weight within 0.002 of it)"
            if args.rule == "max-min" else "the best mean NDCG@10 gain over dense")
    out = {
        "rule": "%s across %s (dense top %s), among weights with fused >= dense - %g on every set"
                % (what, ", ".join(tuning), "/".join(str(k) for *_, k in sets), args.tolerance),
        "k": {name: k for name, _, _, k in sets},
        "model": model_dir.name if args.model else "shipped (course_lib/course_reranker/assets)",
        "cranfield_tune_queries": sorted(tune.queries),
        **{f"{name}_dense_ndcg@10": round(base, 4) for name, (_, base) in tuning.items()},
        **{f"{name}_reranker_alone_ndcg@10": round(v, 4) for name, v in alone.items()},
        **{f"{name}_ndcg@10_by_weight": {str(w): round(v, 4) for w, v in by_w.items()} for name, (by_w, _) in tuning.items()},
        **choice,
        "family": family,
        "alternatives_worst_gain": dict(sorted(alt_worst.items(), key=lambda kv: -kv[1])),
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
