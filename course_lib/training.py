"""Fine-tuning a reranker on your own domain: data, hard negatives, training, honest reporting.

* :func:`load_records` reads ``{"query", "positive_doc", "negative_doc"}`` records from JSON
  or JSONL and names the record at fault when one is malformed.
* :func:`mine_hard_negatives` draws negatives from the first stage's ranking, skips likely
  *false* negatives (scored by the bi-encoder within ``margin`` of the positive) and mixes in
  random negatives.
* :class:`DomainSpecificReranker` (the course's API) fine-tunes with sentence-transformers'
  ``CrossEncoderTrainer`` using a loss that fits the labels — binary cross-entropy on labelled
  pairs, or multiple-negatives ranking on (query, positive, negative) triplets on *raw logits*
  — with a held-out split, an evaluator, and a before/after report that flags a constant
  predictor or a model that ended worse than it started.

Example
-------
>>> recs = [{"query": "q", "positive_doc": "p", "negative_doc": "n"}]
>>> _validate_records(recs)[0]["query"]
'q'
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
from course_lib.errors import CourseError

REQUIRED = ("query", "positive_doc", "negative_doc")
LOSSES = ("bce", "listwise", "mnrl")


class TrainingRecordError(CourseError, ValueError):
    """A training record is malformed; the message names the record."""


def _validate_records(records, source: str = "records") -> list[dict]:
    """Check every record has non-empty string ``query``, ``positive_doc`` and ``negative_doc``."""
    if not isinstance(records, list) or not records:
        raise TrainingRecordError(f"{source}: expected a non-empty list of records")
    for i, rec in enumerate(records):
        where = f"{source}: record {i}"
        if not isinstance(rec, dict):
            raise TrainingRecordError(f"{where} is a {type(rec).__name__}, expected an object")
        for key in REQUIRED:
            if key not in rec:
                raise TrainingRecordError(f"{where} is missing field '{key}' (has: {', '.join(sorted(rec))})")
            if not isinstance(rec[key], str) or not rec[key].strip():
                raise TrainingRecordError(f"{where} has an empty or non-text '{key}'")
    return records


def load_records(path) -> list[dict]:
    """Read training records from a JSON list or a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise TrainingRecordError(f"training data file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise TrainingRecordError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    else:
        try:
            records = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TrainingRecordError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return _validate_records(records, str(path))


def negative_pool(ranking, judged: dict, ranks: tuple[int, int] = (2, 30)) -> list[str]:
    """Doc ids at first-stage ``ranks`` (from 1, inclusive) that are not judged relevant.

    ``ranking`` is ``[(doc_id, score), ...]`` best first.  Skipping rank 1 (or more) leaves out
    the candidates most likely to be unjudged relevant documents.

    >>> negative_pool([("a", .9), ("b", .8), ("c", .7)], {"b": 1}, ranks=(1, 3))
    ['a', 'c']
    """
    lo, hi = ranks
    return [d for d, _ in ranking[lo - 1 : hi] if judged.get(d, 0) <= 0]


def mine_hard_negatives(
    ds,
    index=None,
    n_hard: int = 3,
    n_random: int = 1,
    ranks: tuple[int, int] = (2, 30),
    margin: float = 0.05,
    seed: int = 0,
    show_progress: bool = False,
):
    """Training records with hard negatives from the dense first stage.

    For each judged (query, positive) the candidates at dense ``ranks`` that are not judged
    relevant become negatives, except those whose bi-encoder cosine is within ``margin`` of
    the positive's (or above it): those are likely unjudged relevant documents — false
    negatives that would teach the model the wrong thing.  ``n_random`` random documents are
    added for easy contrast.

    Returns:
        ``(records, report)`` where ``report`` counts the negatives drawn and the suspected
        false negatives skipped.
    """
    from course_lib.dense import DenseIndex, encode_queries

    rng = random.Random(seed)
    # cached by collection name and corpus contents (splits by query share the corpus)
    index = index or DenseIndex.build(ds.corpus, cache_key=ds.name, show_progress=show_progress)
    qids = sorted(ds.queries)
    q_emb = encode_queries([ds.queries[q] for q in qids], index.embedder, show_progress=show_progress)
    hi = ranks[1]
    hits = index.search_vectors(q_emb, hi)
    all_ids = [d for d in ds.corpus if ds.doc_text(d).strip()]  # some collections hold empty documents
    usable = set(all_ids)
    records, skipped, drawn = [], 0, 0
    for qid, qe, ranking in zip(qids, q_emb, hits):
        judged = ds.qrels.get(qid, {})
        for pos in sorted(d for d, g in judged.items() if g > 0 and d in usable):
            pos_cos = float(index.similarity(qe, [pos])[0])
            sims = dict(ranking)
            pool = []
            for d in negative_pool(ranking, judged, ranks):
                if d == pos or d not in usable:
                    continue
                if sims[d] >= pos_cos - margin:
                    skipped += 1
                    continue
                pool.append(d)
            negs = rng.sample(pool, min(n_hard, len(pool)))
            tries = 0
            while len(negs) < n_hard + n_random and tries < 50:
                d = rng.choice(all_ids)
                tries += 1
                if judged.get(d, 0) <= 0 and d not in negs and d != pos:
                    negs.append(d)
            for neg in negs:
                records.append({"query": ds.queries[qid], "positive_doc": ds.doc_text(pos), "negative_doc": ds.doc_text(neg)})
                drawn += 1
    return records, {"negatives": drawn, "suspected_false_negatives_skipped": skipped, "queries": len(qids)}


def _heldout_samples(records: list[dict]) -> list[dict]:
    """Group held-out records per query for ``CrossEncoderRerankingEvaluator``."""
    by_q: dict[str, dict] = {}
    for r in records:
        s = by_q.setdefault(r["query"], {"query": r["query"], "positive": [], "negative": []})
        if r["positive_doc"] not in s["positive"]:
            s["positive"].append(r["positive_doc"])
        if r["negative_doc"] not in s["negative"]:
            s["negative"].append(r["negative_doc"])
    return list(by_q.values())


def _heldout_scores(model, samples: list[dict]) -> dict:
    """MRR and share of queries whose positive outranks all its negatives, per query, plus logit spread."""
    import torch

    rr, top1, all_logits = [], [], []
    for s in samples:
        docs = s["positive"] + s["negative"]
        logits = model.predict([(s["query"], d) for d in docs], activation_fn=torch.nn.Identity(), show_progress_bar=False)
        logits = np.asarray(logits, dtype=np.float64).ravel()
        all_logits.extend(logits.tolist())
        order = np.argsort(-logits, kind="stable")
        first_pos = next(r for r, i in enumerate(order) if i < len(s["positive"]))
        rr.append(1.0 / (first_pos + 1))
        top1.append(float(first_pos == 0))
    return {"mrr": rr, "top1": top1, "logit_std": float(np.std(all_logits)) if all_logits else 0.0}


class DomainSpecificReranker:
    """Fine-tune a cross-encoder on domain records (the course's API, built to be trusted).

    Args:
        base_model: a CrossEncoder, or a name/path for :func:`course_lib.models.load_reranker`
            (None = the course reranker).
        domain_data_path: JSON/JSONL records of ``query``, ``positive_doc``, ``negative_doc``.
        records: the same records in memory (instead of a path).
        loss: ``"bce"`` (each record gives a positive and a negative labelled pair),
            ``"listwise"`` (records sharing a query and positive form one group: softmax
            cross-entropy over the positive and all its negatives, on raw logits — the shipped
            reranker's own loss) or ``"mnrl"`` (each record is a triplet; softmax over the
            positive, the negative and other queries' documents in the batch, on raw logits).
        heldout_fraction: share of *queries* kept out of training for the before/after report.
        seed: makes the split, shuffling and initialisation repeatable.
    """

    def __init__(
        self,
        base_model=None,
        domain_data_path=None,
        *,
        records: list[dict] | None = None,
        loss: str = "bce",
        heldout_fraction: float = 0.25,
        max_length: int = 192,
        seed: int = 0,
    ):

        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}")
        if domain_data_path is None and records is None:
            raise ValueError("give domain_data_path or records")
        if base_model is None or isinstance(base_model, (str, Path)):
            # a private copy: training must not change the cached shared model
            from sentence_transformers import CrossEncoder

            from course_lib.course_reranker.modeling import register
            from course_lib.models import ENV_RERANKER, _resolve, course_reranker_path

            register()
            path, _ = _resolve(base_model, ENV_RERANKER, course_reranker_path(), "reranker")
            base_model = CrossEncoder(path, max_length=max_length, device="cpu" if not _cuda() else None)
        self.model = base_model
        self.domain_data_path = domain_data_path
        self._records = records
        self.loss_name = loss
        self.heldout_fraction = heldout_fraction
        self.seed = seed
        self.report: dict | None = None

    def load_training_data(self) -> list[dict]:
        """The validated records (from the path or the records given)."""
        if self._records is not None:
            return _validate_records(self._records)
        return load_records(self.domain_data_path)

    def split(self, records: list[dict]) -> tuple[list[dict], list[dict]]:
        """Split by query (never by record: the same query must not sit on both sides)."""
        queries = sorted({r["query"] for r in records})
        random.Random(self.seed).shuffle(queries)
        n_held = max(1, int(round(len(queries) * self.heldout_fraction))) if len(queries) > 1 else 0
        held = set(queries[:n_held])
        return [r for r in records if r["query"] not in held], [r for r in records if r["query"] in held]

    def _dataset(self, records):
        from datasets import Dataset

        if self.loss_name == "bce":
            rows = {"query": [], "document": [], "label": []}
            for r in records:
                for doc, lab in ((r["positive_doc"], 1.0), (r["negative_doc"], 0.0)):
                    rows["query"].append(r["query"])
                    rows["document"].append(doc)
                    rows["label"].append(lab)
            return Dataset.from_dict(rows)
        if self.loss_name == "listwise":
            groups: dict[tuple[str, str], list[str]] = {}
            for r in records:
                negs = groups.setdefault((r["query"], r["positive_doc"]), [])
                if r["negative_doc"] not in negs:
                    negs.append(r["negative_doc"])
            keys = list(groups)
            return Dataset.from_dict({
                "query": [q for q, _ in keys],
                "docs": [[p] + groups[(q, p)] for q, p in keys],
                "labels": [[1.0] + [0.0] * len(groups[(q, p)]) for q, p in keys],
            })
        return Dataset.from_dict(
            {
                "query": [r["query"] for r in records],
                "positive": [r["positive_doc"] for r in records],
                "negative": [r["negative_doc"] for r in records],
            }
        )

    def _loss(self):
        import torch
        from sentence_transformers.cross_encoder import losses

        if self.loss_name == "bce":
            return losses.BinaryCrossEntropyLoss(self.model)
        if self.loss_name == "listwise":
            from course_lib.losses import GroupSoftmaxLoss

            return GroupSoftmaxLoss(self.model)
        # activation_fn=Identity: the default sigmoid squashes already-scaled logits and the
        # gradient vanishes when the head is saturated (loss stuck near ln 2).
        return losses.MultipleNegativesRankingLoss(self.model, scale=1.0, activation_fn=torch.nn.Identity())

    def fine_tune(
        self,
        output_path,
        epochs: int = 3,
        batch_size: int = 16,
        learning_rate: float = 2e-5,
        max_steps: int = -1,
        show_progress: bool = True,
        bf16: bool | None = None,
    ) -> dict:
        """Train, save to ``output_path``, and return a before/after report on held-out queries.

        ``bf16``: mixed precision (bfloat16 autocast, fp32 master weights); ``None`` turns it on
        where it is fast (a CUDA GPU with bf16, a CPU with AVX-512 BF16), about 1.5-2x on CPU.

        The report holds held-out MRR before and after (per query, for confidence intervals),
        ``constant_predictor`` (logit spread collapsed) and ``worse_than_start`` flags.
        """
        from sentence_transformers.cross_encoder import CrossEncoderTrainer, CrossEncoderTrainingArguments
        from sentence_transformers.cross_encoder.evaluation import CrossEncoderRerankingEvaluator
        from transformers import set_seed

        from course_lib.models import bf16_supported

        set_seed(self.seed)
        if bf16 is None:
            bf16 = bf16_supported("cuda" if _cuda() else "cpu")
        records = self.load_training_data()
        train, held = self.split(records)
        if not train:
            raise TrainingRecordError("no training records left after the held-out split")
        samples = _heldout_samples(held)
        before = _heldout_scores(self.model, samples) if samples else None
        evaluator = (
            CrossEncoderRerankingEvaluator(
                [{"query": s["query"], "positive": s["positive"], "documents": s["positive"] + s["negative"]} for s in samples],
                at_k=10, always_rerank_positives=False, name="heldout", write_csv=False,
            )
            if samples
            else None
        )
        args = CrossEncoderTrainingArguments(
            output_dir=str(Path(output_path) / "checkpoints"),
            num_train_epochs=epochs,
            max_steps=max_steps,
            per_device_train_batch_size=batch_size,
            learning_rate=learning_rate,
            warmup_steps=0.1,  # a float is a ratio of the total steps (transformers v5)
            seed=self.seed,
            data_seed=self.seed,
            save_strategy="no",
            eval_strategy="no",
            logging_steps=10,
            report_to="none",
            disable_tqdm=not show_progress,
            use_cpu=not _cuda(),
            bf16=bf16,
        )
        trainer = CrossEncoderTrainer(
            model=self.model, args=args, train_dataset=self._dataset(train), loss=self._loss(), evaluator=evaluator
        )
        trainer.train()
        if bf16:
            # the trainer wraps forward in a bf16 autocast; unwrap it so that the model scores
            # (here and for the caller) exactly as the fp32 weights saved below
            from accelerate.utils import extract_model_from_parallel

            self.model = extract_model_from_parallel(self.model, keep_fp32_wrapper=False)
        self.model.save_pretrained(str(output_path))
        after = _heldout_scores(self.model, samples) if samples else None
        report = {
            "train_records": len(train),
            "heldout_queries": len(samples),
            "loss": self.loss_name,
            "steps": int(trainer.state.global_step),
            "bf16": bool(bf16),
        }
        if before and after:
            report.update(
                mrr_before=float(np.mean(before["mrr"])),
                mrr_after=float(np.mean(after["mrr"])),
                per_query_mrr_before=before["mrr"],
                per_query_mrr_after=after["mrr"],
                logit_std_after=after["logit_std"],
                constant_predictor=after["logit_std"] < 1e-3,
                worse_than_start=float(np.mean(after["mrr"])) < float(np.mean(before["mrr"])),
            )
        self.report = report
        return report


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def gradient_probe(records: list[dict], model=None, n: int = 8, max_length: int = 128,
                   head_scale: float = 20.0) -> dict:
    """Why a sigmoid inside a ranking loss stalls training: loss and gradient norm, both ways.

    Takes a fresh copy of the course reranker (or ``model``, a path) with the head it had
    straight after listwise training (``logit = head_scale x cosine``, no bias), so its logits
    are large, as with many trained models.  On the first ``n`` records it computes
    sentence-transformers' ``MultipleNegativesRankingLoss`` twice: with the library's default
    sigmoid activation (scale 10) and on raw logits (Identity, scale 1), and returns
    ``{name: {"loss", "gradient_norm"}}``.  A saturated sigmoid makes every candidate look the
    same (the loss sits near ln(group size)) and the gradient nearly vanishes.
    """
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.cross_encoder import losses

    from course_lib.course_reranker.modeling import register
    from course_lib.models import ENV_RERANKER, _resolve, course_reranker_path

    _validate_records(records)
    register()
    path, _ = _resolve(model, ENV_RERANKER, course_reranker_path(), "reranker")
    probe = CrossEncoder(path, max_length=max_length, device="cpu")
    head = probe[0].auto_model
    with torch.no_grad():
        head.logit_scale.fill_(head_scale)
        head.logit_bias.zero_()
    batch = records[:n]
    inputs = [[r["query"] for r in batch], [r["positive_doc"] for r in batch], [r["negative_doc"] for r in batch]]
    out = {}
    for name, act, scale in [("sigmoid (library default)", torch.nn.Sigmoid(), 10.0),
                             ("raw logits (Identity)", torch.nn.Identity(), 1.0)]:
        loss_fn = losses.MultipleNegativesRankingLoss(probe, scale=scale, activation_fn=act)
        probe.zero_grad()
        value = loss_fn(inputs, torch.zeros(len(batch)))
        value.backward()
        grad = torch.sqrt(sum((p.grad ** 2).sum() for p in probe.parameters() if p.grad is not None)).item()
        out[name] = {"loss": float(value.item()), "gradient_norm": float(grad)}
    return out
