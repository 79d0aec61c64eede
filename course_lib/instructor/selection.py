"""Calibration and fusion-weight selection for the shipped course reranker (instructor tools).

* :func:`calibrate_and_report` fits the head's Platt scale/bias on dev queries held out of
  training and folds it into the weights, so ``sigmoid(logit)`` is a calibrated probability;
* :func:`select_fusion_weight` picks the pipeline's default fusion weight across tuning
  collections by a rule fixed before any test figure is read
  (``scripts/select_fusion_weight.py`` runs it on SciFact dev, the Cranfield tune half, the MedQuAD tune
  slice and ObliQA dev questions).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from course_lib.data import load_beir
from course_lib.instructor.recipe import save_model


def calibrate_and_report(
    model_dir,
    data_dir,
    dataset: str = "scifact",
    depth: int = 30,
    max_length: int | None = None,
    weights=tuple(round(0.05 * i, 2) for i in range(21)),
    show_progress: bool = True,
) -> dict:
    """Fit the head's scale/bias on the dev queries held out of training, and pick a fusion weight.

    Reranks the dense top ``depth`` of each dev query (from ``training.json``), fits Platt
    scaling on (logit, judged relevant) pairs and folds it into the head
    (``scale' = a * scale``, ``bias' = a * bias + b``), then measures NDCG@10 on the same dev
    queries for each fusion weight.  Writes ``calibration_report.json`` beside the weights.
    Only *training-split* queries are used: nothing here sees a test split.
    """
    from course_lib import metrics
    from course_lib.calibration import Calibration, expected_calibration_error
    import torch
    from transformers import AutoTokenizer

    from course_lib.course_reranker.modeling import CourseRerankerModel
    from course_lib.models import load_reranker
    from course_lib.scorers.cross_encoder import CrossEncoderScorer
    from course_lib.runs import first_stage_run, fused_run, rerank_scores

    model_dir = Path(model_dir)
    info = json.loads((model_dir / "training.json").read_text())
    full = load_beir(dataset, "train", data_dir=data_dir)
    dev = full.subset(info["dev_query_ids"])
    first = first_stage_run(dev, "dense", depth, show_progress=show_progress)
    ce = load_reranker(str(model_dir), max_length=max_length)
    scorer = CrossEncoderScorer(ce)
    scores, seconds, n_pairs = rerank_scores(dev, first, scorer, None, show_progress=show_progress)
    logits, labels = [], []
    for q, cands in scores.items():
        for d, z in cands.items():
            logits.append(z)
            labels.append(1 if dev.qrels[q].get(d, 0) > 0 else 0)
    before = expected_calibration_error(Calibration().probabilities(logits), labels)
    cal = Calibration.fit(logits, labels)
    after_in_sample = expected_calibration_error(cal.probabilities(logits), labels)
    sweep = {w: metrics.mean(metrics.ndcg(fused_run(first, scores, w), dev.qrels, 10)) for w in weights}
    best_w = max(sweep, key=lambda w: (round(sweep[w], 4), -abs(w - 0.5)))
    # fold the calibration into the head
    model = CourseRerankerModel.from_pretrained(str(model_dir))
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    with torch.no_grad():
        model.logit_bias.copy_(cal.a * model.logit_bias + cal.b)
        model.logit_scale.mul_(cal.a)
    model.config.head_scale = float(model.logit_scale)
    model.config.head_bias = float(model.logit_bias)
    save_model(model, tok, model_dir, max_length or ce.max_seq_length)
    report = {
        "dev_queries": len(dev.queries),
        "depth": depth,
        "max_length": max_length or ce.max_seq_length,
        "pairs": n_pairs,
        "pairs_per_second": round(n_pairs / sum(seconds.values()), 1) if seconds else None,
        "platt": {"a": cal.a, "b": cal.b},
        "ece_plain_sigmoid_before": round(before, 4),
        "ece_after_in_sample": round(after_in_sample, 4),
        "dev_ndcg@10_dense": round(metrics.mean(metrics.ndcg(first, dev.qrels, 10)), 4),
        "dev_ndcg@10_by_fusion_weight": {str(w): round(v, 4) for w, v in sweep.items()},
        "dev_best_fusion_weight": best_w,  # depth-`depth` dev only; the default comes from select_fusion_weight.py
    }
    (model_dir / "calibration_report.json").write_text(json.dumps(report, indent=1))
    return report


def select_fusion_weight(tuning: dict, tolerance: float = 0.005, rule: str = "max-min", near: float = 0.002) -> dict:
    """Pick the fusion weight that does best *across domains*, among weights that are safe everywhere.

    Args:
        tuning: ``{collection: ({weight: NDCG@10}, first-stage NDCG@10)}`` on tuning queries only
            (SciFact train queries held out of training; half of an out-of-domain collection) —
            never the queries a result is reported on.
        tolerance: a weight is *safe* if, on every collection, fused >= first stage - tolerance.
        rule: ``"max-min"`` (the default since stage 6's weight fell below the first stage on unseen kinds
            of text): the weight whose **worst** gain over the first stage across the collections is highest —
            and, among weights within ``near`` of that worst-case gain, the smallest (the nearest to the first
            stage: differences that small are query-sampling noise, and a lighter reranker weight loses less
            where the reranker is weak); ``"mean"``: the safe weight with the best mean gain (each domain
            counts once), ties to the weight nearer 0.5 — the rule up to stage 6.

    If no weight is safe, the one with the smallest worst-case loss.

    Returns ``{"weight", "criterion", "safe_weights", "mean_gain", "worst_gain", "gain_by_collection"}``.

    >>> t = {"a": ({0.0: .6, 0.5: .7, 1.0: .72}, .6), "b": ({0.0: .4, 0.5: .41, 1.0: .35}, .4)}
    >>> select_fusion_weight(t)["weight"], select_fusion_weight(t, rule="mean")["weight"]
    (0.5, 0.5)
    >>> t = {"a": ({0.0: .6, 0.4: .70, 0.5: .75, 0.6: .80}, .6), "b": ({0.0: .4, 0.4: .45, 0.5: .451, 0.6: .42}, .4)}
    >>> select_fusion_weight(t)["weight"], select_fusion_weight(t, rule="mean")["weight"]
    (0.4, 0.6)
    """
    if rule not in ("max-min", "mean"):
        raise ValueError(f"rule must be 'max-min' or 'mean', got {rule!r}")
    weights = sorted(set.intersection(*(set(sweep) for sweep, _ in tuning.values())))
    gains = {w: {name: sweep[w] - base for name, (sweep, base) in tuning.items()} for w in weights}
    worst = {w: min(g.values()) for w, g in gains.items()}
    mean = {w: float(np.mean(list(g.values()))) for w, g in gains.items()}
    safe = [w for w in weights if worst[w] >= -tolerance]
    if not safe:
        best = max(weights, key=lambda w: worst[w])
    elif rule == "mean":
        best = max(safe, key=lambda w: (round(mean[w], 4), -abs(w - 0.5)))
    else:
        top = max(worst[w] for w in safe)
        best = min(w for w in safe if worst[w] >= top - near)
    return {
        "weight": best,
        "criterion": rule,
        "safe_weights": safe,
        "mean_gain": round(mean[best], 4),
        "worst_gain": round(worst[best], 4),
        "gain_by_collection": {name: round(g, 4) for name, g in gains[best].items()},
    }


def prefer_model(current: dict, candidate: dict, tolerance: float = 0.01) -> dict:
    """The model rule: does ``candidate`` replace ``current``?  Both are tuning reports
    (``scripts/select_fusion_weight.py --out``) with ``<set>_dense_ndcg@10`` and
    ``<set>_reranker_alone_ndcg@10`` for the same tuning sets.

    The candidate wins if its reranker-alone gain over dense, averaged over the sets the two reports
    share, is higher, and it is at most ``tolerance`` below the current model alone on every set.

    >>> cur = {"a_dense_ndcg@10": .5, "a_reranker_alone_ndcg@10": .6, "b_dense_ndcg@10": .4, "b_reranker_alone_ndcg@10": .3}
    >>> new = {"a_dense_ndcg@10": .5, "a_reranker_alone_ndcg@10": .595, "b_dense_ndcg@10": .4, "b_reranker_alone_ndcg@10": .38}
    >>> prefer_model(cur, new)["replace"]
    True
    >>> prefer_model(cur, {**new, "a_reranker_alone_ndcg@10": .55})["replace"]  # loses 0.05 on set a
    False
    """
    suffix = "_reranker_alone_ndcg@10"
    sets = sorted(k[: -len(suffix)] for k in current if k.endswith(suffix) and k in candidate)
    if not sets:
        raise ValueError("the two reports share no tuning set")

    def gain(rep, s):
        return rep[s + suffix] - rep[s + "_dense_ndcg@10"]

    mean_cur = float(np.mean([gain(current, s) for s in sets]))
    mean_new = float(np.mean([gain(candidate, s) for s in sets]))
    worst = min(candidate[s + suffix] - current[s + suffix] for s in sets)
    return {
        "sets": sets,
        "mean_alone_gain_current": round(mean_cur, 4),
        "mean_alone_gain_candidate": round(mean_new, 4),
        "worst_change_alone": round(worst, 4),
        "replace": bool(mean_new > mean_cur and worst >= -tolerance),
    }
