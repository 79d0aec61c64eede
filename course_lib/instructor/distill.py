"""A smaller course reranker for the speed tier: a few of the teacher's layers, trained to reproduce
its scores (knowledge distillation).

1. **Student.** A copy of the course reranker keeping only some transformer layers
   (:func:`truncate_layers`; the embeddings, the head and the kept layers start from the teacher's
   weights — far better than random, yet not the teacher).  The word-piece embedding matrix (11.7 M of
   the 22.7 M parameters) stays frozen and is *shared* with the teacher: the student's folder stores
   only what it changed (:func:`save_student`), and :func:`course_lib.models.load_reranker` fills the
   matrix in from the teacher's weights, checking their fingerprint.
2. **Data** (:func:`prepare_groups`, one portable file).  Queries of every kind the course reranks:
   SciFact *train* claims outside the teacher's dev split, SciFact, Cranfield and MedQuAD titles as
   pseudo-queries, MedQuAD *train* questions outside the teacher's tuning slice, the course corpus's
   train half — each with its dense top ``n_candidates``.  No test split and no label is used: the
   teacher's logits are the targets, so any query set will do.  The file also holds the teacher's dev
   claims with their qrels, on which the student is selected.
3. **Loss** (:func:`distill_groups`).  Mean squared error on raw logits plus a listwise KL term on each
   query's softmax, so the student keeps both the scale (thresholds, calibration) and the order (NDCG).

``course-lib`` does not train this at run time.  The shipped student
(``course_lib/course_reranker/assets_small/``, 2 of 6 layers, 3.7 M stored parameters, 7.5 MB) came from::

    python -m course_lib.instructor distill prepare --data $COURSE_DATA_DIR --out runs/distill-groups.json.xz
    python -m course_lib.instructor distill train --groups runs/distill-groups.json.xz --keep 3 2 --epochs 8 \
        --device cuda --out runs/students --targets runs/teacher-targets.pt

(10,312 queries, 309,360 pairs; on one H200 GPU: 72 s tokenising, 16 s for the teacher's scores, 114 s
training the 2-layer student; the same recipe runs on a CPU, where the teacher's scores alone take hours).
:func:`course_lib.optimize.small_reranker_path` finds it (or ``$COURSE_SMALL_RERANKER``, or
``runs/course-reranker-small/``).  Its ``distill_report.json`` records data, settings, time, hardware, every
epoch's dev figures and the selection rule: the fewest layers within 0.02 dev NDCG@10 of the teacher.

>>> layers_evenly(6, 2), layers_evenly(6, 3), layers_evenly(4, 4)
([0, 5], [0, 2, 5], [0, 1, 2, 3])
"""

from __future__ import annotations

import argparse
import copy
import json
import lzma
import os
import platform
import random
import time
from pathlib import Path

from course_lib.course_reranker.modeling import tensor_fingerprint  # the runtime checks it when loading

SHARED_FILE = "shared_embeddings.json"
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"


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


# -- data ------------------------------------------------------------------------------------
def prepare_groups(data_root, out, teacher_dir=None, n_candidates: int = 30, medquad_questions: int = 1500,
                   seed: int = 0, show_progress: bool = True) -> dict:
    """Write the distillation queries with their dense top ``n_candidates`` to ``out`` (xz JSON).

    Returns a summary (queries per source).  ``data_root`` holds the BEIR folders ``scifact``,
    ``cranfield`` and ``medquad``; a missing one is skipped with a note.
    """
    from course_lib.data import course_query_split, load_beir
    from course_lib.dense import DenseIndex, encode_texts
    from course_lib.models import course_reranker_path

    teacher_dir = Path(teacher_dir or course_reranker_path())
    info = json.loads((teacher_dir / "training.json").read_text())
    dev_ids = set(info["dev_query_ids"])
    medquad_tune = set(info.get("medquad_tune_query_ids", []))
    rng = random.Random(seed)
    docs: dict[str, str] = {}
    groups: list[dict] = []
    dev: dict = {}
    data_root = Path(data_root)

    def add(prefix, ds, index, source, queries: list[tuple[str, str]]):
        if not queries:
            return
        hits = index.search_vectors(encode_texts([q for _, q in queries], index.embedder, show_progress=show_progress),
                                    n_candidates)
        for (qid, q), h in zip(queries, hits):
            ids = [d for d, _ in h]
            for d in ids:
                docs.setdefault(f"{prefix}:{d}", ds.doc_text(d))
            groups.append({"source": source, "id": qid, "query": q, "docs": [f"{prefix}:{d}" for d in ids]})

    def titles(ds, n=None):
        out = [(f"title:{d}", doc["title"].strip()) for d, doc in sorted(ds.corpus.items()) if doc.get("title", "").strip()]
        return out if n is None else rng.sample(out, min(n, len(out)))

    if (data_root / "scifact").is_dir():
        ds = load_beir(data_root / "scifact", split="train")
        index = DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=show_progress)
        train = [(q, ds.queries[q]) for q in sorted(ds.queries) if q not in dev_ids]
        add("scifact", ds, index, "scifact train claims", train)
        add("scifact", ds, index, "scifact titles", titles(ds))
        dq = sorted(q for q in ds.queries if q in dev_ids)
        hits = index.search_vectors(encode_texts([ds.queries[q] for q in dq], index.embedder, show_progress=False), n_candidates)
        dev = {"name": "SciFact dev claims (the teacher's held-out train claims)", "queries": {q: ds.queries[q] for q in dq},
               "qrels": {q: ds.qrels[q] for q in dq}, "candidates": {q: [[f"scifact:{d}", s] for d, s in h] for q, h in zip(dq, hits)}}
        for h in hits:
            for d, _ in h:
                docs.setdefault(f"scifact:{d}", ds.doc_text(d))
    if (data_root / "cranfield").is_dir():
        ds = load_beir(data_root / "cranfield", split="test")  # corpus titles only: Cranfield's queries are test data
        index = DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=show_progress)
        add("cranfield", ds, index, "cranfield titles", titles(ds))
    if (data_root / "medquad").is_dir():
        ds = load_beir(data_root / "medquad", split="train")
        index = DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=show_progress)
        qs = [(q, ds.queries[q]) for q in sorted(ds.queries) if q not in medquad_tune]
        add("medquad", ds, index, "medquad train questions", rng.sample(qs, min(medquad_questions, len(qs))))
        add("medquad", ds, index, "medquad titles", titles(ds, medquad_questions))
    train_half = course_query_split()[0]
    index = DenseIndex.build(train_half.corpus, cache_key=train_half.name, show_progress=False)
    add("course", train_half, index, "course corpus train half", [(q, train_half.queries[q]) for q in sorted(train_half.queries)])
    summary = _count(groups)
    payload = {"n_candidates": n_candidates, "seed": seed, "summary": summary, "docs": docs, "groups": groups, "dev": dev}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with lzma.open(out, "wt", encoding="utf-8") as f:
        json.dump(payload, f)
    return {"file": str(out), "queries": len(groups), "pairs": sum(len(g["docs"]) for g in groups), "by_source": summary,
            "dev_queries": len(dev.get("queries", {})), "documents": len(docs)}


def read_groups(path) -> dict:
    """The payload :func:`prepare_groups` wrote."""
    with lzma.open(path, "rt", encoding="utf-8") as f:
        return json.load(f)


# -- training --------------------------------------------------------------------------------
def _encode(tok, pairs, max_length):
    import torch

    enc = tok([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=max_length,
              padding="max_length", return_tensors="pt")
    return {k: enc[k].to(torch.int32) for k in ("input_ids", "attention_mask", "token_type_ids")}


def _forward(model, enc, rows, device):

    n = int(enc["attention_mask"][rows].sum(1).max())  # trim the batch to its longest pair
    batch = {k: v[rows, :n].to(device, non_blocking=True).long() for k, v in enc.items()}
    return model(**batch).logits.view(-1).float()


def _score_all(model, enc, device, batch_size=512, autocast=None):
    """Logits of every encoded pair (no gradients), in order."""
    import contextlib

    import torch

    out = []
    model.eval()
    ctx = torch.autocast(device.split(":")[0], dtype=autocast) if autocast is not None else contextlib.nullcontext()
    with torch.no_grad(), ctx:
        for i in range(0, len(enc["input_ids"]), batch_size):
            out.append(_forward(model, enc, torch.arange(i, min(i + batch_size, len(enc["input_ids"]))), device).cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _dev_figures(scores, payload, n_pairs_dev, teacher_scores=None) -> dict:
    """NDCG@10 on the dev claims from the scores of their candidates (in file order), and top-10
    agreement with the teacher's when given."""
    from course_lib import metrics

    dev = payload["dev"]
    run, trun, i = {}, {}, 0
    for q in sorted(dev["candidates"]):
        ids = [d.split(":", 1)[1] for d, _ in dev["candidates"][q]]
        run[q] = {d: float(s) for d, s in zip(ids, scores[i : i + len(ids)])}
        if teacher_scores is not None:
            trun[q] = {d: float(s) for d, s in zip(ids, teacher_scores[i : i + len(ids)])}
        i += len(ids)
    assert i == n_pairs_dev
    out = {"ndcg@10": round(metrics.mean(metrics.ndcg(run, dev["qrels"], 10)), 4)}
    if teacher_scores is not None:
        over = [len(set(metrics.ranked(run[q], 10)) & set(metrics.ranked(trun[q], 10))) / 10 for q in run]
        out["top10_overlap_with_teacher"] = round(sum(over) / len(over), 3)
    return out


_ENCODED: dict = {}


def distill_groups(groups_file, out, teacher_dir=None, keep: int = 3, epochs: int = 4, lr: float = 2e-4,
                   batch_queries: int = 16, kl_weight: float = 1.0, max_length: int = 192, seed: int = 0,
                   device: str | None = None, max_queries: int | None = None, time_budget_s: float | None = None,
                   targets_file=None, log=print) -> dict:
    """Train a ``keep``-layer student on :func:`prepare_groups`'s file and save it (shared embeddings).

    The teacher scores every pair once (its logits are cached in ``targets_file`` when given, so a second
    student reuses them).  The student is scored on the dev claims after every epoch; the best epoch's
    weights are the ones saved.  ``time_budget_s`` stops training early (the report says so).
    """
    import numpy as np
    import torch
    from transformers import AutoTokenizer

    from course_lib.course_reranker.modeling import CourseRerankerModel, register
    from course_lib.models import course_reranker_path, pick_device

    register()
    device = pick_device(device)
    random.seed(seed)
    torch.manual_seed(seed)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    teacher_dir = Path(teacher_dir or course_reranker_path())
    tok = AutoTokenizer.from_pretrained(str(teacher_dir))
    key = (str(groups_file), max_queries, max_length, seed, str(teacher_dir))
    if key not in _ENCODED:  # a second student in the same process reuses the tokenised pairs
        t0 = time.perf_counter()
        payload = read_groups(groups_file)
        groups = payload["groups"]
        if max_queries is not None:
            groups = random.Random(seed).sample(groups, min(max_queries, len(groups)))
        docs = payload["docs"]
        pairs = [(g["query"], docs[d]) for g in groups for d in g["docs"]]
        dev = payload["dev"]
        dev_pairs = [(dev["queries"][q], docs[d]) for q in sorted(dev["candidates"]) for d, _ in dev["candidates"][q]]
        _ENCODED.clear()
        _ENCODED[key] = (payload, groups, len(pairs), len(dev_pairs), _encode(tok, pairs, max_length),
                         _encode(tok, dev_pairs, max_length), time.perf_counter() - t0)
    payload, groups, n_pairs, n_dev, enc, dev_enc, tokenize_s = _ENCODED[key]
    dev = payload["dev"]
    sizes = [len(g["docs"]) for g in groups]
    log(f"{len(groups)} queries, {n_pairs} pairs (+{n_dev} dev) tokenised in {tokenize_s:.0f} s on {device}")

    teacher = CourseRerankerModel.from_pretrained(str(teacher_dir), dtype=torch.float32).to(device)
    t0 = time.perf_counter()
    cached = None
    if targets_file is not None and Path(targets_file).is_file():
        cached = torch.load(targets_file)
        if cached.get("n_pairs") != n_pairs or cached.get("n_dev") != n_dev:
            cached = None
    if cached is None:
        targets = _score_all(teacher, enc, device)
        teacher_dev = _score_all(teacher, dev_enc, device)
        if targets_file is not None:
            torch.save({"n_pairs": n_pairs, "n_dev": n_dev, "targets": targets, "dev": teacher_dev,
                        "seconds": time.perf_counter() - t0}, targets_file)
    else:
        targets, teacher_dev = cached["targets"], cached["dev"]
    teacher_s = time.perf_counter() - t0 if cached is None else cached.get("seconds", 0.0)
    teacher_fig = _dev_figures(teacher_dev.numpy(), payload, n_dev)
    log(f"teacher: {n_pairs + n_dev} pairs in {teacher_s:.1f} s; dev NDCG@10 {teacher_fig['ndcg@10']}")

    n_teacher_layers = teacher.config.num_hidden_layers
    layers = layers_evenly(n_teacher_layers, keep)
    student = truncate_layers(teacher.cpu(), layers).to(device)
    del teacher
    student.bert.embeddings.word_embeddings.weight.requires_grad_(False)  # shared with the teacher
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    starts = np.concatenate([[0], np.cumsum(sizes)])
    order = list(range(len(groups)))
    steps_per_epoch = (len(order) + batch_queries - 1) // batch_queries
    steps_total = epochs * steps_per_epoch
    warm = max(1, steps_total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, 1 - s / steps_total))
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else None
    history, best, best_state, stopped = [], None, None, False
    t_train = time.perf_counter()
    for ep in range(epochs):
        student.train()
        random.Random(seed + ep).shuffle(order)
        losses = []
        for b in range(0, len(order), batch_queries):
            chunk = order[b : b + batch_queries]
            rows = torch.cat([torch.arange(starts[i], starts[i + 1]) for i in chunk])
            if amp is not None:
                with amp:
                    logits = _forward(student, enc, rows, device)
            else:
                logits = _forward(student, enc, rows, device)
            target = targets[rows].to(device)
            loss = torch.nn.functional.mse_loss(logits, target)
            kl, pos = 0.0, 0
            for i in chunk:
                n = sizes[i]
                kl = kl + torch.nn.functional.kl_div(torch.log_softmax(logits[pos : pos + n], 0),
                                                     torch.softmax(target[pos : pos + n], 0), reduction="sum")
                pos += n
            loss = loss + kl_weight * kl / len(chunk)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if time_budget_s is not None and time.perf_counter() - t_train > time_budget_s:
                stopped = True
                break
        fig = _dev_figures(_score_all(student, dev_enc, device).numpy(), payload, n_dev, teacher_dev.numpy())
        fig.update(epoch=ep + 1, mean_loss=round(float(np.mean(losses)), 4), steps=len(losses),
                   seconds=round(time.perf_counter() - t_train, 1))
        history.append(fig)
        log(f"keep {keep}, epoch {ep + 1}: loss {fig['mean_loss']:.3f}, dev NDCG@10 {fig['ndcg@10']}, "
            f"top-10 overlap {fig['top10_overlap_with_teacher']}")
        if best is None or fig["ndcg@10"] > best["ndcg@10"]:
            best = fig
            best_state = {k: v.detach().to("cpu").clone() for k, v in student.state_dict().items()}
        if stopped:
            break
    train_s = time.perf_counter() - t_train
    student.load_state_dict(best_state)
    student = student.cpu().float().eval()
    n_params = sum(p.numel() for p in student.parameters())
    report = {
        "teacher": "the course reranker (assets/)", "kept_layers": layers,
        "layers": f"{keep} of {n_teacher_layers}",
        "parameters": n_params, "parameters_stored": n_params - student.bert.embeddings.word_embeddings.weight.numel(),
        "data": {"queries": len(groups), "pairs": n_pairs, "by_source": _count(groups),
                 "candidates": f"dense top {payload['n_candidates']}", "dev": dev["name"], "dev_queries": len(dev["queries"])},
        "settings": {"epochs": epochs, "lr": lr, "batch_queries": batch_queries, "kl_weight": kl_weight,
                     "max_length": max_length, "seed": seed, "frozen": "word-piece embeddings (shared with the teacher)",
                     "precision": "bf16 autocast" if amp is not None else "fp32"},
        "teacher_dev": teacher_fig, "history": history, "best_epoch": best["epoch"], "stopped_by_time_budget": stopped,
        "seconds": {"tokenize": round(tokenize_s, 1), "teacher_scoring": round(teacher_s, 1), "training": round(train_s, 1)},
        "hardware": {"device": device, "device_name": torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU",
                     "cpu_count": os.cpu_count(), "machine": platform.machine(), "torch": torch.__version__},
    }
    save_student(student, tok, out, teacher_dir, max_length=max_length, report=report)
    return report


def _count(groups):
    out = {}
    for g in groups:
        out[g["source"]] = out.get(g["source"], 0) + 1
    return out


def save_student(model, tokenizer, out, teacher_dir, max_length: int, report: dict | None = None) -> Path:
    """Save a student whose word-piece embeddings equal the teacher's: every other weight in fp16
    safetensors, the config (computed in fp32), the tokenizer, the sentence-transformers files and
    ``shared_embeddings.json`` (where the matrix comes from and its fingerprint).  No sentence-transformers
    call is needed, so this runs wherever torch and transformers do."""
    import shutil

    from safetensors.torch import save_file

    out, teacher_dir = Path(out), Path(teacher_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    shared = state[WORD_EMBEDDINGS]
    save_file({k: v.detach().contiguous().half() for k, v in state.items() if k != WORD_EMBEDDINGS},
              str(out / "model.safetensors"), metadata={"format": "pt"})
    cfg = model.config.to_dict()
    cfg.update(dtype="float32", architectures=["CourseRerankerModel"], tie_word_embeddings=False,
               sbert_ce_default_activation_function="torch.nn.modules.activation.Sigmoid")
    cfg.pop("torch_dtype", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    for name in ("tokenizer.json", "tokenizer_config.json", "modules.json", "sentence_bert_config.json",
                 "config_sentence_transformers.json", "special_tokens_map.json", "vocab.txt"):
        if (teacher_dir / name).is_file():
            shutil.copy(teacher_dir / name, out / name)
    sb = out / "sentence_bert_config.json"
    if sb.is_file():
        conf = json.loads(sb.read_text())
        conf["max_seq_length"] = max_length
        sb.write_text(json.dumps(conf, indent=2) + "\n")
    (out / SHARED_FILE).write_text(json.dumps({"tensor": WORD_EMBEDDINGS, "from": "the course reranker (course_lib/course_reranker/assets)",
                                               "fingerprint": tensor_fingerprint(shared)}, indent=1) + "\n")
    if report is not None:
        (out / "distill_report.json").write_text(json.dumps(report, indent=1) + "\n")
    return out


def main(argv=None) -> None:
    """``distill prepare|train``: the speed tier's two steps (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m course_lib.instructor distill",
                                 description="Distil the course reranker into a smaller student.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the distillation queries and their dense candidates to one file")
    p.add_argument("--data", required=True, help="folder holding the BEIR folders scifact, cranfield, medquad")
    p.add_argument("--out", required=True)
    p.add_argument("--candidates", type=int, default=30)
    p.add_argument("--medquad-questions", type=int, default=1500)
    t = sub.add_parser("train", help="train a student on a prepared file")
    t.add_argument("--groups", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--teacher", default=None)
    t.add_argument("--keep", type=int, nargs="+", default=[3], help="layers kept (several: one student each, OUT/keep-N)")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--batch-queries", type=int, default=16)
    t.add_argument("--device", default=None)
    t.add_argument("--max-queries", type=int, default=None, help="a random sample of the queries (quick trials)")
    t.add_argument("--time-budget", type=float, default=None, help="seconds of training at most")
    t.add_argument("--targets", default=None, help="cache file for the teacher's logits")
    args = ap.parse_args(argv)
    if args.cmd == "prepare":
        print(json.dumps(prepare_groups(args.data, args.out, n_candidates=args.candidates,
                                        medquad_questions=args.medquad_questions), indent=1))
    else:
        for keep in args.keep:
            out = Path(args.out) / f"keep-{keep}" if len(args.keep) > 1 else args.out
            rep = distill_groups(args.groups, out, teacher_dir=args.teacher, keep=keep, epochs=args.epochs, lr=args.lr,
                                 batch_queries=args.batch_queries, device=args.device, max_queries=args.max_queries,
                                 time_budget_s=args.time_budget, targets_file=args.targets)
            print(json.dumps({k: rep[k] for k in ("layers", "teacher_dev", "best_epoch", "history", "seconds")}, indent=1))

