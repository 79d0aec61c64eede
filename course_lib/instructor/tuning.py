"""Choosing the ONNX scorer's selective int8 recipe, on tuning claims only (never the test split).

``python -m course_lib.instructor tune-onnx [n_queries [variant ...]]`` prints one JSON row per
variant (:func:`tune_selective`); :data:`course_lib.scorers.onnx_export.SELECTIVE_KEEP_FP32` was
picked with it (see :mod:`course_lib.scorers.onnx`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from course_lib.scorers.cross_encoder import CrossEncoderScorer
from course_lib.scorers.onnx import OnnxScorer, ensure_model
from course_lib.scorers.onnx_export import FORMAT_VERSION, quantize


#: The variants :func:`tune_selective` compares: name -> (keep_fp32 rules, per_channel).
TUNING_VARIANTS = {
    "int8 (all)": (None, False),
    "int8 (all, per-channel)": (None, True),
    "keep last_layer": (("last_layer",), False),
    "keep ffn_out": (("ffn_out",), False),
    "keep ffn_out+attn_out": (("ffn_out", "attn_out"), False),
    "keep last_layer+ffn_out": (("last_layer", "ffn_out"), False),
    "only ffn_in int8": (("query", "key", "value", "attn_out", "ffn_out"), False),
    "keep layer.0/ffn_out, per-channel": (("layer.0/ffn_out",), True),
    "keep ffn_out, per-channel": (("ffn_out",), True),
}


def tune_selective(n_queries: int = 30, k: int = 30, variants=None, work_dir=None, threads: int = 1,
                   data_dir=None) -> list[dict]:
    """Compare quantisation variants on SciFact *train* claims held out from training.

    The claims are the first ``n_queries`` of the recipe's ``dev_query_ids`` (in
    ``course_reranker/assets/training.json``), their candidates the dense top ``k``.  Each row
    gives max and mean |logit - torch fp32 logit| and NDCG@10 of the reranked lists, plus a
    rough single-thread speed (pairs/s; noisy on a shared machine).  The test split is never read.
    """
    from course_lib import metrics
    from course_lib.data import load_beir
    from course_lib.models import course_reranker_path
    from course_lib.runs import first_stage_run

    info = json.loads((course_reranker_path() / "training.json").read_text())
    ds = load_beir("scifact", split="train", data_dir=data_dir)
    ds = ds.subset(sorted(q for q in info["dev_query_ids"] if q in ds.queries)[:n_queries])
    first = first_stage_run(ds, "dense", k)
    keys = [(q, d) for q in sorted(first) for d in sorted(first[q])]
    pairs = [(ds.queries[q], ds.doc_text(d)) for q, d in keys]

    def row(name, logits, seconds, ref):
        run: dict[str, dict[str, float]] = {}
        for (q, d), s in zip(keys, logits):
            run.setdefault(q, {})[d] = float(s)
        ref_run: dict[str, dict[str, float]] = {}
        for (q, d), s in zip(keys, ref):
            ref_run.setdefault(q, {})[d] = float(s)
        overlap = [len(set(metrics.ranked(run[q], 10)) & set(metrics.ranked(ref_run[q], 10))) / 10 for q in run]
        return {"variant": name, "ndcg@10": metrics.mean(metrics.ndcg(run, ds.qrels, 10)),
                "max_abs_dlogit": float(np.max(np.abs(logits - ref))),
                "mean_abs_dlogit": float(np.mean(np.abs(logits - ref))),
                "top10_overlap": float(np.mean(overlap)),
                "pairs_per_s": len(pairs) / seconds if seconds else None}

    base = CrossEncoderScorer()
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="onnx-tune-"))
    work.mkdir(parents=True, exist_ok=True)

    def cached_logits(tag, compute):  # logits on disk, so variants can be compared over several calls
        f = work / f"logits-{tag}-{base.fingerprint()}-{FORMAT_VERSION}-{n_queries}-{k}.npz"
        if f.is_file():
            saved = np.load(f)
            return saved["logits"], float(saved["seconds"])
        t = time.perf_counter()
        logits = compute()
        seconds = time.perf_counter() - t
        np.savez(f, logits=logits, seconds=seconds)
        return logits, seconds

    ref, torch_s = cached_logits("torch", lambda: base.score_pairs(pairs))
    rows = [row("torch fp32", ref, torch_s, ref),
            {**row("dense first stage", np.asarray([first[q][d] for q, d in keys], dtype=np.float32), None, ref),
             "max_abs_dlogit": None, "mean_abs_dlogit": None}]  # other units: only the rankings compare
    fp32 = ensure_model(base, "fp32", work)
    plan = {"onnx fp32": None, **TUNING_VARIANTS} if variants is None else dict(variants)
    for name, spec in plan.items():
        tag = hashlib.sha1(repr(spec).encode()).hexdigest()[:8]
        path = fp32
        if spec is not None:
            rules, per_channel = spec
            path = fp32.parent / f"tune-{tag}.onnx"
            if not path.is_file():
                quantize(fp32, path, "int8" if rules is None else "selective", keep_fp32=rules,
                         per_channel=per_channel)

        def compute(path=path):
            scorer = OnnxScorer.from_file(path, base, threads=threads)
            scorer.score_pairs(pairs[: base.batch_size])  # warm-up
            return scorer.score_pairs(pairs)

        logits, seconds = cached_logits(tag, compute)
        rows.append({**row(name, logits, seconds, ref), "mb": path.stat().st_size / 2**20})
    return rows


def main(argv=None) -> int:
    """``tune-onnx [n_queries [variant ...]]``: one JSON line per variant (``$ONNX_TUNE_DIR`` keeps logits)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m course_lib.instructor tune-onnx", description=main.__doc__)
    ap.add_argument("n_queries", nargs="?", type=int, default=30)
    ap.add_argument("variants", nargs="*", help='"onnx fp32" or names of TUNING_VARIANTS (default: all)')
    args = ap.parse_args(argv)
    chosen = None if not args.variants else {m: ({"onnx fp32": None} | TUNING_VARIANTS)[m] for m in args.variants}
    for r in tune_selective(n_queries=args.n_queries, variants=chosen, work_dir=os.environ.get("ONNX_TUNE_DIR")):
        print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}))
    return 0
