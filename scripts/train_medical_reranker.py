"""Fine-tune the course reranker on MedQuAD train questions (notebook 04's medical reranker).

Uses notebook 03's tools: dense hard negatives (:func:`course_lib.training.mine_hard_negatives`)
and :class:`course_lib.training.DomainSpecificReranker` (listwise loss, the shipped model's own).
The MedQuAD tuning slice (:func:`course_lib.domains.benchmark.medquad_tuning_split`, 100 train
questions) is never trained on: notebook 04 chooses per-specialty thresholds on it.  LiveQA test
questions are never read.

The model goes to a run directory (default ``runs/medquad-reranker``, never into the package);
``eval_cache/domains/medquad-reranker.json`` records its fingerprint, data, time and hardware so
notebook 04 can read this model's shipped scores on a machine that has not trained it.

    python scripts/train_medical_reranker.py --data ../shared/datasets [--questions 400] [--out runs/medquad-reranker]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("COURSE_DATA_DIR"), help="folder holding medquad/")
    ap.add_argument("--questions", type=int, default=400, help="MedQuAD train questions to train on")
    ap.add_argument("--negatives", type=int, default=4, help="hard negatives per question (plus one random)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "runs" / "medquad-reranker"))
    ap.add_argument("--record", default=str(ROOT / "eval_cache" / "domains" / "medquad-reranker.json"))
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("give --data or set COURSE_DATA_DIR")

    import torch

    from course_lib.domains.benchmark import medquad_tuning_split
    from course_lib.data import load_beir
    from course_lib.scorers.cross_encoder import CrossEncoderScorer
    from course_lib.training import DomainSpecificReranker, mine_hard_negatives

    mq = load_beir(Path(args.data) / "medquad", split="train")
    trainable, tune = medquad_tuning_split(mq)
    qids = sorted(trainable.queries)
    random.Random(args.seed).shuffle(qids)
    train_ds = trainable.subset(sorted(qids[: args.questions]))
    t0 = time.perf_counter()
    records, mining = mine_hard_negatives(train_ds, n_hard=args.negatives, n_random=1, seed=args.seed, show_progress=True)
    mining_s = time.perf_counter() - t0
    trainer = DomainSpecificReranker(records=records, loss="listwise", heldout_fraction=0.1, seed=args.seed)
    t0 = time.perf_counter()
    report = trainer.fine_tune(args.out, epochs=args.epochs, batch_size=8, learning_rate=args.lr)
    train_s = time.perf_counter() - t0
    fp = CrossEncoderScorer(args.out).fingerprint()
    record = {
        "model": "the course reranker fine-tuned on MedQuAD train questions (listwise, dense hard negatives)",
        "fingerprint": fp,
        "run_dir": os.path.relpath(args.out, ROOT),
        "data": {"dataset": "medquad", "split": "train", "questions": len(train_ds.queries),
                 "tuning_slice_excluded": len(tune.queries), "records": len(records), **mining},
        "settings": {"epochs": args.epochs, "lr": args.lr, "batch_size": 8, "loss": "listwise", "seed": args.seed,
                     "negatives": args.negatives},
        "heldout": {k: v for k, v in report.items() if not k.startswith("per_query")},
        "seconds": {"mining": round(mining_s, 1), "training": round(train_s, 1)},
        "hardware": {"device": "cuda" if torch.cuda.is_available() else "cpu", "cpu_count": os.cpu_count(),
                     "machine": platform.machine(), "torch": torch.__version__},
        "command": "python scripts/train_medical_reranker.py --data $COURSE_DATA_DIR "
                   f"--questions {args.questions} --negatives {args.negatives} --epochs {args.epochs}",
    }
    Path(args.record).parent.mkdir(parents=True, exist_ok=True)
    Path(args.record).write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    main()
