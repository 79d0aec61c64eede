"""Choose OptimizedReranker's levels by measurement on tuning queries (never test).

Tuning queries: the SciFact *train* claims the course reranker held out as its dev split
(``course_lib/course_reranker/assets/training.json``), dense top K.  Every candidate lever runs in
one process through :func:`course_lib.bench.bench`; then

* ``accuracy`` = the naive computation (the full model, every candidate);
* ``balanced`` = the fastest candidate within 0.005 NDCG@10 of ``accuracy``;
* ``speed``    = the fastest candidate within 0.02;

a candidate must be at least 1.2x faster than the full model on every candidate (smaller gains are timing noise).

The table and the choice go to ``course_lib/assets/optimize_levels.json`` (read by
``OptimizedReranker``) and to stdout.

    COURSE_DATA_DIR=../shared/datasets python scripts/choose_levels.py [--k 30] [--write]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "course_lib" / "assets" / "optimize_levels.json"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("COURSE_DATA_DIR"))
    ap.add_argument("--k", type=int, default=30)
    ap.add_argument("--margins", type=float, nargs="*", default=[0.1, 0.15, 0.2])
    ap.add_argument("--cascade", type=int, nargs="*", default=[5, 10])
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    args = ap.parse_args(argv)

    from course_lib.bench import bench
    from course_lib.data import load_beir
    from course_lib.models import course_reranker_path
    from course_lib.optimize import (CascadeScorer, TokenBudgetScorer, adaptive_rank, scorer_rank,
                                     small_reranker_path)
    from course_lib.rerank import CrossEncoderScorer

    dev_ids = json.loads((course_reranker_path() / "training.json").read_text())["dev_query_ids"]
    ds = load_beir(Path(args.data) / "scifact", split="train").subset(sorted(dev_ids))
    full = CrossEncoderScorer()
    small = CrossEncoderScorer(str(small_reranker_path())) if small_reranker_path() else None
    variants = {"token budget": scorer_rank(TokenBudgetScorer(full)), "max length 128": scorer_rank(full.configured(max_length=128))}
    for m in args.margins:
        variants[f"adaptive K (margin {m})"] = adaptive_rank(full, m)
    if small is not None:
        variants["distilled"] = scorer_rank(small)
        for n in args.cascade:
            variants[f"cascade (distilled -> full top {n})"] = scorer_rank(CascadeScorer(small, full, n))
        for m in args.margins:
            variants[f"distilled + adaptive K (margin {m})"] = adaptive_rank(small, m)
    res = bench(ds, k=args.k, variants=variants, naive=scorer_rank(full))
    acc = res["naive"]["ndcg@10"]
    rows = [dict(res["naive"], name="accuracy: full model, every candidate")] + res["variants"]

    def fastest(tol):  # a speed-up under 1.2x is within timing noise: not worth a level
        ok = [r for r in res["variants"] if r["ndcg@10"] >= acc - tol and r["speedup"] >= 1.2]
        return max(ok, key=lambda r: r["speedup"])["name"] if ok else None

    levels = {"accuracy": "full", "balanced": fastest(0.005) or "full", "speed": fastest(0.02) or "full"}
    record = {"tuning": f"SciFact train claims held out as the course reranker's dev split ({len(ds.queries)}), dense top {args.k}",
              "rule": "balanced = fastest within 0.005 NDCG@10 of accuracy; speed = fastest within 0.02; "
                      "a lever must be at least 1.2x faster than accuracy, the full model on every candidate (else the level is the full model)",
              "levels": levels, "rows": rows}
    print(json.dumps(record, indent=1))
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
