"""How the shipped course reranker is trained (``python -m course_lib.instructor train-reranker``).

The recipe, step by step:

1. Load a BEIR-layout dataset's *train* split and hold out a share of its queries (dev).
2. Embed the corpus with the bi-encoder; for each training (query, positive) draw
   ``n_negatives`` hard negatives from the dense ranks ``neg_ranks`` that are not judged relevant
   (a later stage may take half of them from the earlier model's own near misses: ``neg_miner``).
3. Add *pseudo-query* groups from the corpus itself: a document's title is the query, its
   body the positive, the title's dense neighbours the negatives.  No labels are used.
   A later stage may broaden the signal (``label_sample``, ``medquad_groups``,
   ``pseudo_corpora``): MedQuAD train questions with their answers (a fixed slice held out for
   tuning, :func:`medquad_tuning_split`) and title -> text pseudo-queries from other corpora.
4. Train the segment mean-pool cosine cross-encoder (:mod:`course_lib.course_reranker.modeling`) on groups of
   one positive + negatives with softmax cross-entropy over the group (logits at a fixed scale),
   plus ``kl_weight`` x KL(bi-encoder's group distribution || model's) to keep what the
   bi-encoder knew.  AdamW, linear warm-up/decay, deterministic seed, tqdm progress.
5. On the dev queries: fit the head's scale and bias (Platt scaling) so ``sigmoid(logit)`` is a
   calibrated probability, and measure NDCG@10 by fusion weight (see :mod:`course_lib.fusion`):
   :mod:`course_lib.instructor.selection`.

The learner modules supply the pieces a learner meets first: the listwise loss
(:func:`course_lib.losses.group_softmax_cross_entropy`), query capping
(:func:`course_lib.rerank.cap_query`) and bf16 autocast (:func:`course_lib.models.autocast`).
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from course_lib.data import Dataset, document_text, load_beir
from course_lib.dense import DenseIndex, encode_texts
from course_lib.domains.benchmark import medquad_tuning_split  # shared with notebook 04; re-exported here
from course_lib.losses import group_softmax_cross_entropy
from course_lib.models import autocast
from course_lib.scorers.cross_encoder import cap_query
from course_lib.training import negative_pool


@dataclass
class RecipeConfig:
    epochs: int = 1
    lr: float = 2e-5
    warmup: float = 0.1
    groups_per_step: int = 4
    n_negatives: int = 4
    neg_ranks: tuple[int, int] = (3, 30)
    n_pseudo: int = 1000
    course_repeats: int = 3  # groups per (train-half course query, answer), each with fresh negatives
    kl_weight: float = 0.5
    train_scale: float = 20.0
    max_length: int = 192
    max_query_tokens: int = 64
    dev_fraction: float = 0.12
    seed: int = 13
    # "dense": hard negatives from the bi-encoder's ranking; "reranker" (a stage that continues an
    # earlier model): half of them from the earlier model's own top ``reranker_pool`` non-relevant
    # candidates that it scores below the positive (the mistakes it nearly makes), half from dense
    neg_miner: str = "dense"
    reranker_pool: int = 10
    bf16: bool = True  # autocast on CPUs with avx512_bf16 / on CUDA; master weights stay fp32
    # broader signal (a later stage): cap on the main dataset's labelled groups (None = all), MedQuAD
    # train questions (consumer health, another question style) and title -> text pseudo-queries from
    # other corpora, each found beside the main dataset in the data directory
    label_sample: int | None = None
    medquad_groups: int = 0
    medquad_tune: int = 100  # MedQuAD train questions held out for tuning (fixed: seed 0), never trained on
    pseudo_corpora: tuple[str, ...] = ()
    n_pseudo_extra: int = 300  # pseudo-query groups per extra corpus
    # pseudo-query groups show every document the same way: its body without its title (and without
    # the title repeated at the start of the body, as Cranfield's are).  False (stages 1-5) puts the
    # positive's bare body against negatives *with* their titles, which teaches "a document headed by a
    # title like the query is a negative" -- and makes Cranfield's positive contain the query verbatim.
    pseudo_symmetric: bool = False


@dataclass
class Group:
    query: str
    docs: list[str]  # positive first
    teacher: list[float]  # bi-encoder cosines, same order


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def label_groups(ds: Dataset, index: DenseIndex, cfg: RecipeConfig, rng: random.Random, show_progress=True,
                 reranker=None) -> list[Group]:
    """One group per judged (query, positive): the positive and hard negatives from the dense ranking.

    With ``reranker`` (a :class:`course_lib.rerank.Scorer`, for ``cfg.neg_miner == "reranker"``)
    half of the negatives come from the reranker's own top ``cfg.reranker_pool`` non-relevant
    candidates among the dense top ``neg_ranks[1]``, skipping any it scores at or above the positive
    (likely unjudged relevant documents); the other half from the dense ranks as before.
    """
    qids = sorted(ds.queries)
    q_emb = encode_texts([ds.queries[q] for q in qids], index.embedder, show_progress=show_progress)
    hi = cfg.neg_ranks[1]
    hits = index.search_vectors(q_emb, hi)
    logits = _reranker_logits(ds, qids, hits, reranker, cfg, show_progress) if reranker is not None else None
    groups = []
    for qid, qe, ranking in zip(qids, q_emb, hits):
        judged = ds.qrels.get(qid, {})
        pool = negative_pool(ranking, judged, cfg.neg_ranks)
        for pos in sorted(d for d, g in judged.items() if g > 0 and d in ds.corpus):
            if logits is None:
                groups += _sample_group(ds, index, qid, qe, pos, pool, cfg, rng)
                continue
            lq = logits[qid]
            pos_logit = lq.get(pos)
            hard = sorted((d for d, _ in ranking if judged.get(d, 0) <= 0), key=lambda d: -lq[d])
            if pos_logit is not None:
                hard = [d for d in hard if lq[d] < pos_logit]
            hard = hard[: cfg.reranker_pool]
            n_hard = min(cfg.n_negatives // 2, len(hard))
            negs = rng.sample(hard, n_hard)
            rest = [d for d in pool if d not in negs]
            negs += rng.sample(rest, min(cfg.n_negatives - n_hard, len(rest)))
            groups += _group(ds, index, qid, qe, pos, negs)
    return groups


def _reranker_logits(ds: Dataset, qids, hits, reranker, cfg: RecipeConfig, show_progress=True) -> dict:
    """The reranker's logits for each query's dense top ``neg_ranks[1]`` and its judged positives."""
    from tqdm.auto import tqdm

    out = {}
    device = "cuda" if torch.cuda.is_available() else "cpu"
    for qid, ranking in tqdm(list(zip(qids, hits)), desc="scoring candidates with the reranker", disable=not show_progress):
        docs = list(dict.fromkeys([d for d, _ in ranking] + [d for d, g in ds.qrels.get(qid, {}).items() if g > 0 and d in ds.corpus]))
        with torch.no_grad(), autocast(device, cfg.bf16):
            scores = reranker.score_pairs([(ds.queries[qid], ds.doc_text(d)) for d in docs])
        out[qid] = dict(zip(docs, map(float, scores)))
    return out


def _sample_group(ds: Dataset, index: DenseIndex, qid: str, q_emb, pos: str, pool: list[str], cfg: RecipeConfig,
                  rng: random.Random) -> list[Group]:
    """``[Group]`` of ``pos`` and ``cfg.n_negatives`` drawn from ``pool`` (``[]`` if the pool is empty)."""
    return _group(ds, index, qid, q_emb, pos, rng.sample(pool, min(cfg.n_negatives, len(pool))))


def _group(ds: Dataset, index: DenseIndex, qid: str, q_emb, pos: str, negs: list[str]) -> list[Group]:
    """``[Group]`` of ``pos`` then ``negs`` with the bi-encoder's cosines as teacher (``[]`` without negatives)."""
    if not negs:
        return []
    ids = [pos] + negs
    return [Group(ds.queries[qid], [ds.doc_text(d) for d in ids], index.similarity(q_emb, ids).tolist())]


def graded_groups(ds: Dataset, index: DenseIndex, cfg: RecipeConfig, rng: random.Random, repeats: int = 1,
                  show_progress=True) -> list[Group]:
    """Groups for graded labels: each top-grade document against documents judged *lower* (grade 1
    "on topic" included) or unjudged from the dense top ``neg_ranks[1]``; ``repeats`` groups per
    answer, each with fresh negatives.  Used for the course corpus's train half."""
    qids = sorted(ds.queries)
    q_emb = encode_texts([ds.queries[q] for q in qids], index.embedder, show_progress=show_progress)
    hits = index.search_vectors(q_emb, cfg.neg_ranks[1])
    groups = []
    for qid, qe, ranking in zip(qids, q_emb, hits):
        judged = ds.qrels.get(qid, {})
        top = max(judged.values(), default=0)
        if top <= 0:
            continue
        pool = [d for d, _ in ranking if judged.get(d, 0) < top]
        for pos in sorted(d for d, g in judged.items() if g == top and d in ds.corpus):
            for _ in range(repeats):
                groups += _sample_group(ds, index, qid, qe, pos, pool, cfg, rng)
    return groups


def _pseudo_groups(corpus: dict, index: DenseIndex, cfg: RecipeConfig, rng: random.Random, show_progress=True,
                  n: int | None = None) -> list[Group]:
    """Title -> body groups from the corpus (no labels): negatives are the title's dense neighbours.

    ``n`` groups (default ``cfg.n_pseudo``) from documents with a title of at least four words."""
    n = cfg.n_pseudo if n is None else n
    candidates = [d for d in sorted(corpus) if len(corpus[d].get("title", "").split()) >= 4 and corpus[d].get("text")]
    chosen = rng.sample(candidates, min(n, len(candidates)))
    if not chosen:  # a corpus without titles gives no pseudo-queries
        return []
    titles = [corpus[d]["title"] for d in chosen]
    t_emb = encode_texts(titles, index.embedder, show_progress=show_progress)
    lo, hi = cfg.neg_ranks
    hits = index.search_vectors(t_emb, hi + 1)
    groups = []
    for doc_id, title, te, ranking in zip(chosen, titles, t_emb, hits):
        pool = [d for d, _ in ranking[lo - 1 : hi + 1] if d != doc_id][: hi - lo + 1]
        negs = rng.sample(pool, min(cfg.n_negatives, len(pool)))
        ids = [doc_id] + negs
        teacher = index.similarity(te, ids).tolist()
        if cfg.pseudo_symmetric:
            docs = [pseudo_body(corpus[d]) for d in ids]
        else:
            docs = [corpus[doc_id]["text"]] + [document_text(corpus[d]) for d in negs]
        groups.append(Group(title, docs, teacher))
    return groups


def pseudo_body(doc: dict) -> str:
    """A document's body without its title, and without the title repeated at the body's start.

    >>> pseudo_body({"title": "wing in a slipstream .", "text": "wing in a slipstream . an experimental study"})
    'an experimental study'
    >>> pseudo_body({"title": "A title", "text": "An abstract."})
    'An abstract.'
    """
    title, text = doc.get("title", "").strip(), doc.get("text", "").strip()
    norm = lambda s: re.sub(r"\W+", " ", s).strip().lower()  # noqa: E731
    t = norm(title)
    if t and norm(text).startswith(t):
        # drop as many leading words of the body as the title has, then any punctuation left over
        ends = [m.end() for m in re.finditer(r"\w+", text)]
        rest = text[ends[len(t.split()) - 1]:].lstrip(" .:;,-")
        return rest or text
    return text


def _train_groups(model, tokenizer, groups: list[Group], cfg: RecipeConfig, device: str = "cpu", show_progress=True, log=print):
    """Listwise training on groups; returns a list of per-step losses."""
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    model.to(device).train()
    model.logit_scale.requires_grad_(False)
    model.logit_bias.requires_grad_(False)
    with torch.no_grad():
        model.logit_scale.fill_(cfg.train_scale)
        model.logit_bias.zero_()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(groups) / cfg.groups_per_step)
    total = steps_per_epoch * cfg.epochs
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup * total), total)
    rng = random.Random(cfg.seed)
    losses = []
    bar = tqdm(total=total, desc="training", disable=not show_progress)
    for _epoch in range(cfg.epochs):
        order = list(range(len(groups)))
        rng.shuffle(order)
        for s in range(steps_per_epoch):
            batch = [groups[i] for i in order[s * cfg.groups_per_step : (s + 1) * cfg.groups_per_step]]
            sizes = [len(g.docs) for g in batch]
            qs = [cap_query(tokenizer, g.query, cfg.max_query_tokens)[0] for g in batch for _ in g.docs]
            ds = [d for g in batch for d in g.docs]
            enc = tokenizer(qs, ds, truncation="only_second", max_length=cfg.max_length, padding=True, return_tensors="pt")
            enc = {k: v.to(device) for k, v in enc.items()}
            with autocast(device, cfg.bf16):
                logits = model(**enc).logits.view(-1).float()
            loss = torch.zeros((), device=device)
            start = 0
            for g, n in zip(batch, sizes):
                lg = logits[start : start + n]
                start += n
                loss = loss + group_softmax_cross_entropy(lg, [1.0] + [0.0] * (n - 1))  # positive first
                if cfg.kl_weight > 0:
                    t = torch.softmax(torch.tensor(g.teacher, device=device) * cfg.train_scale, 0)
                    kl = torch.sum(t * (torch.log(t + 1e-12) - torch.log_softmax(lg, 0)))
                    loss = loss + cfg.kl_weight * kl
            loss = loss / len(batch)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(1)
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
    bar.close()
    model.eval()
    return losses


def train_reranker(
    data_dir,
    output_dir,
    dataset: str = "scifact",
    cfg: RecipeConfig | None = None,
    device: str | None = None,
    show_progress: bool = True,
    max_groups: int | None = None,
    init_from=None,
    log=print,
) -> dict:
    """Train the course reranker from a BEIR-layout dataset and save a ``CrossEncoder`` directory.

    Args:
        data_dir: folder holding ``dataset`` (or the dataset folder itself).
        output_dir: where the model, tokenizer and ``training.json`` are written.
        max_groups: cap on training groups (for smoke tests).
        init_from: continue from a course reranker saved by an earlier run (a second stage with
            fresh negatives, pseudo-queries and learning-rate schedule) instead of the bi-encoder.
            The dev split is the earlier run's, so dev queries stay out of training.

    Returns:
        A dict of what was done (group counts, seconds, dev query ids) also saved as
        ``training.json`` beside the weights.
    """
    from transformers import AutoTokenizer

    from course_lib.course_reranker.modeling import from_bi_encoder
    from course_lib.models import bundled_embedder_path, load_embedder, pick_device

    cfg = cfg or RecipeConfig()
    set_seed(cfg.seed)
    device = pick_device(device)
    rng = random.Random(cfg.seed)
    full = load_beir(dataset, "train", data_dir=data_dir)
    prev = None
    if init_from is not None:
        prev = json.loads((Path(init_from) / "training.json").read_text())
        dev_ids = set(prev["dev_query_ids"])
        train, dev = full.subset(sorted(set(full.queries) - dev_ids)), full.subset(sorted(dev_ids))
    else:
        train, dev = full.split_queries(cfg.dev_fraction, seed=cfg.seed)
    embedder = load_embedder()
    index = DenseIndex.build(full.corpus, embedder, cache_key=full.name, show_progress=show_progress)
    miner = None
    if cfg.neg_miner == "reranker":
        if init_from is None:
            raise ValueError("neg_miner='reranker' mines with the model a stage continues: give init_from")
        from course_lib.models import load_reranker
        from course_lib.scorers.cross_encoder import CrossEncoderScorer

        miner = CrossEncoderScorer(load_reranker(str(init_from), device=device, max_length=cfg.max_length))
    elif cfg.neg_miner != "dense":
        raise ValueError("neg_miner must be 'dense' or 'reranker'")
    groups = label_groups(train, index, cfg, rng, show_progress, reranker=miner)
    if cfg.label_sample is not None:
        groups = rng.sample(groups, min(cfg.label_sample, len(groups)))
    n_label = len(groups)
    pseudo = _pseudo_groups(full.corpus, index, cfg, rng, show_progress) if cfg.n_pseudo else []
    n_pseudo = len(pseudo)
    groups += pseudo
    course_ids = []
    if cfg.course_repeats:
        from course_lib.data import course_query_split

        course_train, _ = course_query_split()
        course_ids = sorted(course_train.queries)
        course_index = DenseIndex.build(course_train.corpus, embedder, cache_key="course", show_progress=False)
        groups += graded_groups(course_train, course_index, cfg, rng, cfg.course_repeats, show_progress)
    n_course = len(groups) - n_label - n_pseudo
    extra, medquad_tune_ids = {}, []
    if cfg.medquad_groups:
        mq = load_beir(_dataset_beside(data_dir, dataset, "medquad"), "train")
        mq_train, mq_tune = medquad_tuning_split(mq, cfg.medquad_tune)
        medquad_tune_ids = sorted(mq_tune.queries)
        mq_index = DenseIndex.build(mq.corpus, embedder, cache_key=mq.name, show_progress=show_progress)
        picked = mq_train.subset(sorted(rng.sample(sorted(mq_train.queries), min(cfg.medquad_groups, len(mq_train.queries)))))
        extra["medquad-train"] = label_groups(picked, mq_index, cfg, rng, show_progress)
    for name in cfg.pseudo_corpora:
        other = load_beir(_dataset_beside(data_dir, dataset, name), _any_split(_dataset_beside(data_dir, dataset, name)))
        o_index = DenseIndex.build(other.corpus, embedder, cache_key=other.name, show_progress=show_progress)
        extra[f"{name}-pseudo"] = _pseudo_groups(other.corpus, o_index, cfg, rng, show_progress, n=cfg.n_pseudo_extra)
    for g in extra.values():
        groups += g
    if max_groups:
        groups = rng.sample(groups, min(max_groups, len(groups)))
    log(f"{n_label} labelled and {n_pseudo} pseudo-query groups from {len(train.queries)} queries, "
        f"{n_course} course-corpus groups from {len(course_ids)} train-half queries "
        f"({len(groups)} used); dev: {len(dev.queries)} queries"
        + "".join(f"; {len(g)} {name} groups" for name, g in extra.items()))
    base = bundled_embedder_path()
    if init_from is not None:
        from course_lib.course_reranker.modeling import CourseRerankerModel, register

        register()
        model = CourseRerankerModel.from_pretrained(str(init_from), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(init_from))
    else:
        model = from_bi_encoder(str(base), head_scale=cfg.train_scale)
        tokenizer = AutoTokenizer.from_pretrained(str(base))
    t0 = time.time()
    losses = _train_groups(model, tokenizer, groups, cfg, device, show_progress, log)
    seconds = time.time() - t0
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, tokenizer, out, cfg.max_length)
    info = {
        "dataset": dataset,
        "config": asdict(cfg),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "n_groups": len(groups),
        "n_label_groups": n_label,
        "n_pseudo_groups": n_pseudo,
        "n_course_groups": n_course,
        "n_extra_groups": {name: len(g) for name, g in extra.items()},
        "medquad_tune_query_ids": medquad_tune_ids,
        "course_train_query_ids": course_ids,
        "train_seconds": round(seconds, 1),
        "first_loss": round(float(np.mean(losses[:20])), 4) if losses else None,
        "last_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
        "dev_query_ids": sorted(dev.queries),
        "init_from": None if prev is None else {"path": Path(init_from).name, **{k: v for k, v in prev.items() if k != "dev_query_ids"}},
    }
    (out / "training.json").write_text(json.dumps(info, indent=1))
    return info


def _dataset_beside(data_dir, main: str, name: str) -> Path:
    """The folder of dataset ``name`` given the recipe's ``data_dir`` (a folder of datasets or ``main`` itself)."""
    root = Path(data_dir)
    if (root / name).is_dir():
        return root / name
    if root.name == main and (root.parent / name).is_dir():
        return root.parent / name
    raise FileNotFoundError(f"dataset {name!r} not found beside {root} (expected {root / name})")


def _any_split(folder: Path) -> str:
    """A qrels split of ``folder`` (pseudo-queries read only its corpus; queries and judgements are unused)."""
    return sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))[0]


def save_model(model, tokenizer, out: Path, max_length: int, half: bool = False) -> None:
    """Save as a sentence-transformers ``CrossEncoder`` directory (safetensors, optional fp16)."""
    from sentence_transformers import CrossEncoder

    model.config.sbert_ce_default_activation_function = "torch.nn.modules.activation.Sigmoid"
    if half:
        model = model.half()
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if half:
        model.float()
    ce = CrossEncoder(str(out), max_length=max_length, device="cpu")
    ce.save_pretrained(str(out))
