"""A listwise loss for cross-encoders: softmax cross-entropy over a group of documents.

The shipped course reranker is trained with it (:mod:`course_lib.instructor.recipe` has its own loop), and
:class:`course_lib.training.DomainSpecificReranker` uses it with ``loss="listwise"``.

Why not sentence-transformers' ``ListNetLoss``? It turns the labels into a target with a softmax,
so the labels ``[1, 0, 0, 0, 0]`` become a target of only 0.40 on the positive.  Here the labels are
normalised by their sum, so one positive gets all the mass — plain "pick the positive" cross-entropy
on **raw logits** (no sigmoid in front, which would saturate and stop the gradient).

Example
-------
>>> import torch
>>> group_softmax_cross_entropy(torch.tensor([3.0, 0.0, 0.0]), [1, 0, 0]).item() < 0.1
True
"""

from __future__ import annotations

import torch
from sentence_transformers.util import batch_to_device


def group_softmax_cross_entropy(logits: torch.Tensor, labels) -> torch.Tensor:
    """``-sum(target * log_softmax(logits))`` with ``target = labels / sum(labels)``."""
    target = torch.as_tensor(labels, dtype=torch.float32, device=logits.device)
    if target.sum() <= 0:
        raise ValueError("a group needs at least one positive label")
    target = target / target.sum()
    return -(target * torch.log_softmax(logits.float(), 0)).sum()


class GroupSoftmaxLoss(torch.nn.Module):
    """``CrossEncoderTrainer`` loss over ``(query, [docs])`` rows with a label list per row.

    Dataset columns: ``query``, ``docs`` (positive(s) and negatives), ``labels`` (1 / 0 per doc).
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, inputs, labels, prompt: str | None = None, task: str | None = None):
        queries, docs_list = inputs
        pairs = [(q, d) for q, docs in zip(queries, docs_list) for d in docs]
        tokens = batch_to_device(self.model.preprocess(pairs, prompt=prompt, task=task), self.model.device)
        logits = self.model(tokens)["scores"].view(-1)
        loss, start = logits.new_zeros((), dtype=torch.float32), 0
        for docs, lab in zip(docs_list, labels):
            loss = loss + group_softmax_cross_entropy(logits[start : start + len(docs)], lab)
            start += len(docs)
        return loss / len(docs_list)

    def get_config_dict(self) -> dict:
        return {"target": "labels / sum(labels)", "activation": "none (raw logits)"}
