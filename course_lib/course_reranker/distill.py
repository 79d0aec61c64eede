"""A smaller course reranker for the speed tier: a few of the teacher's layers, trained to reproduce
its scores (knowledge distillation).

1. **Student.** A copy of the course reranker keeping only some transformer layers
   (:func:`truncate_layers`; the embeddings, the head and the kept layers start from the teacher's
   weights — far better than random, yet not the teacher).
2. **Data.** SciFact *train* claims outside the teacher's dev split (its ``training.json``), each with
   its dense top-N candidates; the teacher scores every pair once (its logits are the targets — no
   labels needed, so any query set will do).
3. **Loss.** Mean squared error on raw logits plus a listwise KL term on each query's softmax, so
   the student keeps both the scale (thresholds, calibration) and the order (NDCG).

``course-lib`` does not train this at run time; the instructor runs
``python -m course_lib.course_reranker.distill --data $COURSE_DATA_DIR/scifact --out runs/course-reranker-small``
(where :func:`course_lib.optimize.small_reranker_path` finds it; a student that keeps quality would ship
as ``course_lib/course_reranker/assets_small/``).  ``distill_report.json`` records data, time and
hardware.  The first student (2 layers, 4,800 pairs, 2 epochs, about 15 CPU minutes) did *not* keep
quality (SciFact test NDCG@10 0.536 vs 0.722), so it is not shipped; see notebook 05.

>>> layers_evenly(6, 2), layers_evenly(6, 3), layers_evenly(4, 4)
([0, 5], [0, 2, 5], [0, 1, 2, 3])
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import time
from pathlib import Path


def layers_evenly(n_layers: int, keep: int) -> list[int]:
    """``keep`` layer indices spread over ``n_layers``, always the first and the last."""
    if not 1 <= keep <= n_layers:
        raise ValueError(f"keep must lie in [1, {n_layers}], got {keep}")
    if keep == 1:
        return [n_layers - 1]
    return sorted({round(i * (n_layers - 1) / (keep - 1)) for i in range(keep)})


def truncate_layers(model, layers: list[int]):
    """A copy of a course reranker model with only the given encoder layers (in that order)."""
    import torch.nn as nn

    student = copy.deepcopy(model)
    student.bert.encoder.layer = nn.ModuleList([student.bert.encoder.layer[i] for i in layers])
    student.config.num_hidden_layers = len(layers)
    return student


def _batches(items, size):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def distill(teacher_dir, data_dir, out, keep: int = 2, n_queries: int = 500, n_candidates: int = 16,
            epochs: int = 2, lr: float = 1e-4, batch_queries: int = 4, kl_weight: float = 1.0, seed: int = 0,
            max_length: int = 192, log=print) -> dict:
    """Train and save a ``keep``-layer student of the course reranker; returns the report."""
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from course_lib.course_reranker.modeling import CourseRerankerModel, register
    from course_lib.course_reranker.recipe import save_model
    from course_lib.data import load_beir
    from course_lib.dense import DenseIndex
    from course_lib.rerank import CrossEncoderScorer

    register()
    random.seed(seed)
    torch.manual_seed(seed)
    teacher_dir = Path(teacher_dir)
    dev_ids = set(json.loads((teacher_dir / "training.json").read_text())["dev_query_ids"])
    full = load_beir(data_dir, split="train")
    qids = sorted(set(full.queries) - dev_ids)
    random.Random(seed).shuffle(qids)
    ds = full.subset(sorted(qids[:n_queries]))
    index = DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=False)
    hits = index.search([ds.queries[q] for q in sorted(ds.queries)], n_candidates)
    groups = [(ds.queries[q], [ds.doc_text(d) for d, _ in h]) for q, h in zip(sorted(ds.queries), hits)]

    t0 = time.perf_counter()
    teacher = CrossEncoderScorer(str(teacher_dir))
    targets = [teacher.score(q, texts) for q, texts in groups]
    teacher_s = time.perf_counter() - t0
    log(f"teacher scored {sum(len(t) for _, t in groups)} pairs in {teacher_s:.0f} s")

    tok = AutoTokenizer.from_pretrained(str(teacher_dir))
    base = CourseRerankerModel.from_pretrained(str(teacher_dir)).float()
    layers = layers_evenly(base.config.num_hidden_layers, keep)
    student = truncate_layers(base, layers)
    student.train()
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.01)
    order = list(range(len(groups)))
    steps_total = epochs * ((len(order) + batch_queries - 1) // batch_queries)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps_total // 10)) * max(0.0, 1 - s / steps_total))
    t0 = time.perf_counter()
    losses = []
    for ep in range(epochs):
        random.Random(seed + ep).shuffle(order)
        for chunk in _batches(order, batch_queries):
            qs, ds_, sizes, tgt = [], [], [], []
            for i in chunk:
                q, texts = groups[i]
                qs += [q] * len(texts)
                ds_ += texts
                sizes.append(len(texts))
                tgt.append(torch.tensor(np.asarray(targets[i]), dtype=torch.float32))
            enc = tok(qs, ds_, truncation="only_second", max_length=max_length, padding=True, return_tensors="pt")
            logits = student(**enc).logits.view(-1)
            target = torch.cat(tgt)
            loss = torch.nn.functional.mse_loss(logits, target)
            start = 0
            for n in sizes:
                s_log = torch.log_softmax(logits[start : start + n], 0)
                t_p = torch.softmax(target[start : start + n], 0)
                loss = loss + kl_weight * torch.nn.functional.kl_div(s_log, t_p, reduction="sum") / len(sizes)
                start += n
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss))
        log(f"epoch {ep + 1}/{epochs}: mean loss {np.mean(losses[-len(order) // batch_queries:]):.3f}")
    train_s = time.perf_counter() - t0
    student.eval()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_model(student, tok, out, max_length=max_length, half=True)
    cfg_path = out / "config.json"  # stored in fp16, computed in fp32: fp16 matmuls crawl on a CPU
    cfg = json.loads(cfg_path.read_text())
    cfg["dtype"] = "float32"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    n_params = sum(p.numel() for p in student.parameters())
    report = {
        "teacher": "the course reranker (assets/)", "kept_layers": layers, "layers": f"{keep} of {base.config.num_hidden_layers}",
        "parameters": n_params, "data": {"dataset": "scifact", "split": "train (teacher's dev claims excluded)",
                                         "queries": len(groups), "candidates_per_query": n_candidates,
                                         "pairs": sum(len(t) for _, t in groups)},
        "settings": {"epochs": epochs, "lr": lr, "batch_queries": batch_queries, "kl_weight": kl_weight,
                     "max_length": max_length, "seed": seed},
        "first_loss": losses[0], "last_loss": float(np.mean(losses[-20:])),
        "seconds": {"teacher_scoring": round(teacher_s, 1), "training": round(train_s, 1)},
        "hardware": {"device": "cpu", "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__},
    }
    (out / "distill_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def main(argv=None) -> None:
    from course_lib.models import course_reranker_path

    ap = argparse.ArgumentParser(description="Distil the course reranker into a smaller student.")
    ap.add_argument("--data", required=True, help="the SciFact folder (BEIR layout, train split)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--teacher", default=str(course_reranker_path()))
    ap.add_argument("--keep", type=int, default=2)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--candidates", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args(argv)
    print(json.dumps(distill(args.teacher, args.data, args.out, keep=args.keep, n_queries=args.queries,
                             n_candidates=args.candidates, epochs=args.epochs, lr=args.lr), indent=1))


if __name__ == "__main__":
    main()
