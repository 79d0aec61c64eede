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

    COURSE_DATA_DIR=../shared/datasets python -m course_lib.instructor choose-levels [--k 30] [--write]
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
    from course_lib.optimize import Lever, adaptive_rank, scorer_rank, small_reranker_path
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    dev_ids = json.loads((course_reranker_path() / "training.json").read_text())["dev_query_ids"]
    ds = load_beir(Path(args.data) / "scifact", split="train").subset(sorted(dev_ids))
    full = CrossEncoderScorer()
    small = CrossEncoderScorer(str(small_reranker_path())) if small_reranker_path() else None
    levers = [Lever("token budget"), Lever("max length 128")] + [Lever(adaptive_margin=m) for m in args.margins]
    if small is not None:
        levers += [Lever("distilled")] + [Lever("cascade", rescore_top=n) for n in args.cascade]
        levers += [Lever("distilled", adaptive_margin=m) for m in args.margins]
    variants = {}
    for lever in levers:  # each lever is data (stored in the record) and a scorer built from it
        scorer, margin = lever.build(full, small)
        variants[lever.name] = adaptive_rank(scorer, margin) if margin is not None else scorer_rank(scorer)
    by_name = {lever.name: lever for lever in levers}
    res = bench(ds, k=args.k, variants=variants, naive=scorer_rank(full))
    acc = res["naive"]["ndcg@10"]
    rows = [dict(res["naive"], name="accuracy: full model, every candidate")] + res["variants"]

    def fastest(tol):  # a speed-up under 1.2x is within timing noise: not worth a level
        ok = [r for r in res["variants"] if r["ndcg@10"] >= acc - tol and r["speedup"] >= 1.2]
        return max(ok, key=lambda r: r["speedup"])["name"] if ok else None

    chosen = {"accuracy": Lever(), "balanced": by_name.get(fastest(0.005), Lever()), "speed": by_name.get(fastest(0.02), Lever())}
    levels = {level: lever.name for level, lever in chosen.items()}
    specs = {level: lever.to_dict() for level, lever in chosen.items()}
    record = {"tuning": f"SciFact train claims held out as the course reranker's dev split ({len(ds.queries)}), dense top {args.k}",
              "rule": "balanced = fastest within 0.005 NDCG@10 of accuracy; speed = fastest within 0.02; "
                      "a lever must be at least 1.2x faster than accuracy, the full model on every candidate (else the level is the full model)",
              "levels": levels, "specs": specs, "rows": rows}
    print(json.dumps(record, indent=1))
    if args.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
