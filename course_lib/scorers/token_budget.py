"""Length-aware batching as a scorer (:class:`TokenBudgetScorer`): one of notebook 05's speed levers."""

from __future__ import annotations

import numpy as np

from course_lib.scorers.base import WrappingScorer
from course_lib.scorers.cross_encoder import CrossEncoderScorer

__all__ = ["TokenBudgetScorer"]


class TokenBudgetScorer(WrappingScorer):
    """Length-aware batching: pairs sorted by length and packed into batches of at most
    ``max_tokens`` padded tokens (so short pairs go many to a batch, long ones few), scored, and put
    back in the caller's order.

    A fixed batch size pads every pair of a batch to its longest; on short passages most of a
    batch of 32 is padding when one long pair joins it, and a fixed size leaves the short batches
    small.  Wraps a :class:`~course_lib.scorers.cross_encoder.CrossEncoderScorer` (same model, same
    settings; ``base`` is it with ``batch_size=max_batch``).
    """

    def __init__(self, base: CrossEncoderScorer, max_tokens: int = 8192, max_batch: int = 256):
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError(f"base must be a CrossEncoderScorer, got {type(base).__name__}")
        if max_tokens < base.max_length:
            raise ValueError(f"max_tokens must hold at least one full pair ({base.max_length})")
        super().__init__(base.configured(batch_size=max_batch), "base")
        self.base = self.scorer
        self.max_tokens = max_tokens
        self.max_batch = max_batch
        self.last_batches: list[int] = []

    def batches(self, lengths) -> list[list[int]]:
        """Positions grouped into batches: by ascending length, each batch's size x its longest
        length within ``max_tokens``.

        >>> s = TokenBudgetScorer.__new__(TokenBudgetScorer); s.max_tokens, s.max_batch = 100, 8
        >>> s.batches([50, 10, 10, 40, 10])
        [[1, 2, 4], [3, 0]]
        """
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        out, cur, longest = [], [], 0
        for i in order:
            new_longest = max(longest, lengths[i])
            if cur and (new_longest * (len(cur) + 1) > self.max_tokens or len(cur) >= self.max_batch):
                out.append(cur)
                cur, new_longest = [], lengths[i]
            cur.append(i)
            longest = new_longest
        if cur:
            out.append(cur)
        return out

    def score_pairs(self, pairs):
        if not len(pairs):
            return np.zeros(0, dtype=np.float32)
        tok = self.base.tokenizer
        enc = tok([q for q, _ in pairs], [t for _, t in pairs], truncation="only_second",
                  max_length=self.base.max_length)["input_ids"]
        groups = self.batches([len(e) for e in enc])
        self.last_batches = [len(g) for g in groups]
        out = np.empty(len(pairs), dtype=np.float32)
        for g in groups:
            out[g] = self.base.score_pairs([pairs[i] for i in g])
        return out
