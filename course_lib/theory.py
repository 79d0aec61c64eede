"""Small, runnable demonstrations behind notebook 01 (bi-encoders vs cross-encoders).

Example
-------
>>> from course_lib.theory import pairs_per_query
>>> pairs_per_query(n_queries=1000, k=100)
100000
"""

from __future__ import annotations

import numpy as np


def score_both_ways(pairs: list[tuple[str, str]], embedder=None, scorer=None):
    """Score the same (query, text) pairs with the bi-encoder (cosine) and the cross-encoder.

    Returns a pandas DataFrame with columns query, text, bi_cosine, ce_logit, ce_probability.
    """
    import pandas as pd

    from course_lib.models import load_embedder
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    embedder = embedder or load_embedder()
    scorer = scorer or CrossEncoderScorer()
    qs = embedder.encode([q for q, _ in pairs], normalize_embeddings=True)
    ds = embedder.encode([t for _, t in pairs], normalize_embeddings=True)
    cos = (qs * ds).sum(1)
    logits = scorer.score_pairs(pairs)
    return pd.DataFrame(
        {
            "query": [q for q, _ in pairs],
            "text": [t for _, t in pairs],
            "bi_cosine": np.round(cos, 3),
            "ce_logit": np.round(logits, 2),
            "ce_probability": np.round(scorer.probabilities(logits), 3),
        }
    )


def pairs_per_query(n_queries: int, k: int) -> int:
    """Cross-encoder forward passes needed to rerank ``k`` candidates for ``n_queries`` queries.

    A bi-encoder embeds the corpus once and each query once; a cross-encoder must run once
    per (query, candidate) pair, at query time — nothing can be precomputed.
    """
    if n_queries < 0 or k < 0:
        raise ValueError("counts must be non-negative")
    return n_queries * k


def attention_map(query: str, text: str, scorer=None, layer: int = -1):
    """Attention from query tokens to document tokens in one layer of the cross-encoder.

    Returns ``(query_tokens, doc_tokens, matrix)`` where ``matrix[i, j]`` is the attention
    weight (averaged over heads) that query token ``i`` puts on document token ``j``;
    special tokens are dropped.  A bi-encoder has no such matrix: its query and document
    never see each other.
    """
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    scorer = scorer or CrossEncoderScorer()
    return scorer.attention(query, text, layer)


def ranking_losses(logits, labels, margin: float = 1.0) -> dict:
    """The three families of ranking losses on one query's candidate list.

    * pointwise — binary cross-entropy of each (query, doc) logit against its 0/1 label;
    * pairwise — mean hinge ``max(0, margin - (s_pos - s_neg))`` over positive/negative pairs
      (RankNet uses ``log(1 + exp(-(s_pos - s_neg)))`` instead, also returned);
    * listwise — softmax cross-entropy: ``-log softmax(s)[positive]`` averaged over positives.

    >>> out = ranking_losses([2.0, 0.0, -1.0], [1, 0, 0])
    >>> sorted(out)
    ['listwise_softmax_ce', 'pairwise_hinge', 'pairwise_ranknet', 'pointwise_bce']
    """
    s = np.asarray(logits, dtype=np.float64)
    y = (np.asarray(labels) > 0).astype(np.float64)
    if s.shape != y.shape or not y.any() or y.all():
        raise ValueError("need equal-length logits/labels with at least one positive and one negative")
    bce = np.mean(np.logaddexp(0, s) - y * s)
    diffs = np.array([sp - sn for sp in s[y == 1] for sn in s[y == 0]])
    hinge = np.mean(np.maximum(0.0, margin - diffs))
    ranknet = np.mean(np.logaddexp(0, -diffs))
    log_softmax = s - np.logaddexp.reduce(s)
    listwise = -np.mean(log_softmax[y == 1])
    return {
        "pointwise_bce": float(bce),
        "pairwise_hinge": float(hinge),
        "pairwise_ranknet": float(ranknet),
        "listwise_softmax_ce": float(listwise),
    }
