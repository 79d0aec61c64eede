"""Tokenising (query, passage) pairs once, and not the text truncation drops: the scorer's host path.

A cross-encoder's forward pass takes token ids; everything before it — capping queries, tokenising
pairs, counting truncations, padding batches — is *host* work.  ``CrossEncoder.predict`` tokenises
every passage in full and then truncates it; the course's scorer used to tokenise each pair a second
time, in full, to count truncations.  On a GPU that host work, not the model, sets the pace.

:class:`PairEncoder` gives the ids the model's own tokenizer gives with ``truncation="longest_first"``
and ``max_length`` — the same ids, checked pair by pair in ``tests/scorers/test_pair_encoding.py`` — with:

* **one tokenisation per text**: each distinct query and each distinct passage of a call is tokenised
  once, separately; truncation and the special tokens are added from the token counts (the tokenizer's own
  post-processor does it where its template is not BERT's ``[CLS] A [SEP] B [SEP]``); whether a pair was
  truncated is read from the same counts;
* **little tokenising of dropped text**: a pair keeps at most ``max_length`` tokens, so a long passage is
  first cut at a word boundary to a prefix of about six characters per token it can keep; if the prefix
  turns out to hold too few tokens to decide the pair exactly (the passage must stay the longer side, and
  longer than what is kept), a prefix twice as long is tried, up to the whole passage.  Only for tokenizers
  that split words on whitespace first (BERT's); others tokenise whole passages.

Batches are joined and padded with numpy, and on an accelerator
:class:`~course_lib.scorers.CrossEncoderScorer` prepares the next batch in a producer thread while the model
runs this one (``prefetch``); the score caches keep their names, since the logits are the library's.  Why it
matters: ``eval_cache/bench/h200-scoring-path-before.json`` records the course scorer on an NVIDIA H200
*before* this module — a few hundred pairs a second, flat in batch size and precision, with or without the
service's micro-batching — while the plain ``CrossEncoder.predict`` loop scored about 1,860 pairs a second on
the same GPU.  On a 2-core CPU the host path is a small share of the
scoring time (about 4 % for the old path on SciFact claims), so the gain shows only where the model is fast.
``course-lib bench --host`` measures the host path alone (notebook 05).

The tokenizer's threads (``TOKENIZERS_PARALLELISM``) follow the process's policy
(:func:`course_lib.env.configure`; the HTTP server turns them on).

>>> from course_lib.models import load_reranker
>>> enc = PairEncoder(load_reranker().tokenizer, max_length=16)
>>> rows, truncated = enc.encode([("what is a cat", "a cat is a small domesticated carnivorous mammal " * 40)])
>>> len(rows[0].ids), truncated
(16, [True])
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

__all__ = ["PairEncoder", "PairRow"]

_SPACES = (" ", "\t", "\n", "\r")  # BERT's normaliser turns only these (and Unicode Zs) into spaces
_CHARS_PER_TOKEN = 6.0  # a first prefix's length per needed token: about 1 % of SciFact abstracts need a second try


class PairRow:
    """One encoded pair: ``ids``, ``type_ids`` (lists), built from the query's and the passage's tokens."""

    __slots__ = ("q", "p", "kq", "kp", "_enc", "_layout")

    def __init__(self, q, p, kq, kp, layout, enc=None):
        self.q, self.p, self.kq, self.kp, self._layout, self._enc = q, p, kq, kp, layout, enc

    def __len__(self) -> int:
        return len(self._enc.ids) if self._enc is not None else self.kq + self.kp + 3

    @property
    def ids(self) -> list[int]:
        if self._enc is not None:
            return self._enc.ids
        cls, sep = self._layout
        return [cls, *self.q[: self.kq].tolist(), sep, *self.p[: self.kp].tolist(), sep]

    @property
    def type_ids(self) -> list[int]:
        if self._enc is not None:
            return self._enc.type_ids
        return [0] * (self.kq + 2) + [1] * (self.kp + 1)


class PairEncoder:
    """Token ids of (query, passage) pairs, as the tokenizer gives them with ``longest_first`` truncation.

    Args:
        tokenizer: a Hugging Face *fast* tokenizer (one with ``backend_tokenizer``).
        max_length: tokens per pair, special tokens included.
    """

    def __init__(self, tokenizer, max_length: int):
        from tokenizers import Tokenizer

        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise TypeError(f"PairEncoder needs a fast tokenizer, got {type(tokenizer).__name__}")
        if int(max_length) < 4:
            raise ValueError(f"max_length must be at least 4, got {max_length}")
        spec = backend.to_str()
        self._plain = Tokenizer.from_str(spec)  # private copies: the model's own tokenizer is never reconfigured
        self._plain.no_truncation()
        self._plain.no_padding()
        self._truncating = Tokenizer.from_str(spec)
        self._truncating.no_padding()
        self._truncating.enable_truncation(int(max_length), strategy="longest_first")
        self._encode_batch = getattr(self._plain, "encode_batch_fast", self._plain.encode_batch)  # no offsets needed
        self.max_length = int(max_length)
        self.specials = self._plain.num_special_tokens_to_add(True)
        self.room = self.max_length - self.specials  # tokens of query and passage together
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.names = [n for n in ("input_ids", "token_type_ids", "attention_mask")
                      if n in getattr(tokenizer, "model_input_names", ("input_ids", "attention_mask"))]
        self.left_padding = getattr(tokenizer, "padding_side", "right") == "left"
        # only where words are split on whitespace before anything else is a cut at a space safe
        self.cuts_words = type(backend.pre_tokenizer).__name__ == "BertPreTokenizer"
        self._layout = self._bert_layout()

    def _bert_layout(self):
        """``(cls_id, sep_id)`` when the post-processor makes ``[CLS] A [SEP] B [SEP]`` with type ids 0…0 1…1
        (checked on a probe pair), else None (the post-processor joins every pair itself)."""
        if self.specials != 3:
            return None
        a, b = self._plain.encode_batch(["probe query", "a probe passage"], add_special_tokens=False)
        joined = self._plain.post_process(a, b, add_special_tokens=True)
        ids, types = joined.ids, joined.type_ids
        n, m = len(a.ids), len(b.ids)
        if (len(ids) != n + m + 3 or ids[1:n + 1] != a.ids or ids[n + 2:n + 2 + m] != b.ids or ids[n + 1] != ids[-1]
                or types != [0] * (n + 2) + [1] * (m + 1)):
            return None
        return ids[0], ids[-1]

    def needed(self, q_len: int) -> int:
        """Passage tokens that decide a pair with a ``q_len``-token query: more than the passage can keep, and
        more than the query (``longest_first`` shares the room by which side is longer)."""
        return max(self.room - min(q_len, self.room // 2), q_len) + 1

    def cut(self, text: str, tokens: int) -> str | None:
        """A prefix of ``text`` ending on a whole word (cut at a space) of about ``tokens`` tokens' worth of
        characters, or None when the whole text is that short or holds no space to cut at.

        >>> from course_lib.models import load_reranker
        >>> PairEncoder(load_reranker().tokenizer, max_length=8).cut("one two three four five six seven", 3)
        'one two three four'
        """
        if not self.cuts_words:
            return None
        limit = int(math.ceil(tokens * _CHARS_PER_TOKEN))
        if len(text) <= limit:
            return None
        end = max(text.rfind(s, 0, limit + 1) for s in _SPACES)
        return text[:end] if end > 0 else None

    def passage_budget(self, query: str, max_query_tokens: int | None = None) -> int:
        """The most tokens of a passage the model reads beside ``query`` (cut first to ``max_query_tokens``
        tokens, as the scorer caps queries): the room the query leaves, or half the room when the query takes
        more than half (``longest_first`` then cuts both)."""
        q_len = len(self._plain.encode(query, add_special_tokens=False).ids)
        if max_query_tokens is not None:
            q_len = min(q_len, int(max_query_tokens))
        return self.room - min(q_len, self.room // 2)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens in each text, special tokens left out."""
        return [len(e.ids) for e in self._encode_batch(list(texts), add_special_tokens=False)]

    def cut_to_tokens(self, texts: Sequence[str], max_tokens: int, from_end: bool = False) -> tuple[list[str], list[bool]]:
        """Each text cut to its first ``max_tokens`` tokens at the token's own character offsets, and whether it
        was cut.  For a WordPiece tokenizer (BERT's) a text cut at the end of a token tokenises to the same first
        tokens, so the model reads the same ids as from the whole text truncated there.  ``from_end`` keeps the
        last tokens instead, from the first whole word among them (at most ``max_tokens``).  A long text is
        first cut to a prefix of about six characters per token (as :meth:`encode` does), so the dropped text
        is seldom tokenised.

        >>> from course_lib.models import load_reranker
        >>> enc = PairEncoder(load_reranker().tokenizer, max_length=64)
        >>> enc.cut_to_tokens(["one two three four", "short"], 2)
        (['one two', 'short'], [True, False])
        >>> enc.cut_to_tokens(["one two three four"], 2, from_end=True)
        (['three four'], [True])
        """
        if int(max_tokens) < 1:
            raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
        n = int(max_tokens)
        out, cut = list(texts), [False] * len(texts)
        # a text of at most n characters has at most n tokens (WordPiece; byte-level BPE may split a character,
        # but such a text is far shorter than any window anyway)
        long = [i for i, t in enumerate(texts) if len(t) > n]
        if not long:
            return out, cut
        heads = [None if from_end else self.cut(texts[i], n + 1) for i in long]
        encs = self._plain.encode_batch([h if h is not None else texts[i] for h, i in zip(heads, long)],
                                        add_special_tokens=False)
        short = [k for k, (h, e) in enumerate(zip(heads, encs)) if h is not None and len(e.ids) <= n]
        if short:  # a prefix too short to decide: the whole text
            for k, e in zip(short, self._plain.encode_batch([texts[long[k]] for k in short], add_special_tokens=False)):
                encs[k] = e
        for i, e in zip(long, encs):
            if len(e.ids) <= n:
                continue
            t = texts[i]
            if from_end:  # start on a word's first token: a word cut in its middle would read otherwise
                j, words = len(e.ids) - n, e.word_ids
                while 0 < j < len(words) - 1 and words[j] is not None and words[j] == words[j - 1]:
                    j += 1
                out[i] = t[e.offsets[j][0]:]
            else:
                out[i] = t[: e.offsets[n - 1][1]]
            cut[i] = True
        return out, cut

    def _passages(self, texts: list[str], need: list[int]) -> list:
        """Encodings of ``texts`` (no special tokens), each cut to a prefix that holds at least ``need`` tokens
        where one does, else whole."""
        out: list = [None] * len(texts)
        todo = list(range(len(texts)))
        factor = 1.0
        while todo:
            cuts = [self.cut(texts[i], int(need[i] * factor)) for i in todo]
            encs = self._encode_batch([c if c is not None else texts[i] for c, i in zip(cuts, todo)],
                                      add_special_tokens=False)
            again = []
            for i, c, e in zip(todo, cuts, encs):
                if c is None or len(e.ids) >= need[i]:
                    out[i] = e
                else:  # too few tokens in the prefix to decide the pair: a longer one
                    again.append(i)
            todo, factor = again, factor * 2
        return out

    def encode(self, pairs: Sequence[tuple[str, str]], query_cache: dict | None = None):
        """``(rows, truncated)``: one :class:`PairRow` per pair (``.ids``, ``.type_ids``) and whether the pair
        had more than ``max_length`` tokens.  ``query_cache`` (text -> token ids) lets several calls share
        the tokenisation of a query."""
        qcache = {} if query_cache is None else query_cache
        new_q = [q for q in dict.fromkeys(q for q, _ in pairs) if q not in qcache]
        if new_q:
            for q, e in zip(new_q, self._encode_batch(new_q, add_special_tokens=False)):
                qcache[q] = (np.asarray(e.ids, dtype=np.int64), e)
        texts: dict[str, int] = {}  # each distinct passage once, with the most tokens any of its pairs needs
        for q, t in pairs:
            texts[t] = max(texts.get(t, 0), self.needed(len(qcache[q][0])))
        order = list(texts)
        encs = dict(zip(order, self._passages(order, [texts[t] for t in order])))
        parr = {t: np.asarray(e.ids, dtype=np.int64) for t, e in encs.items()}
        rows, truncated = [], []
        for q, t in pairs:
            qa, qe = qcache[q]
            pa = parr[t]
            nq, np_ = len(qa), len(pa)
            over = nq + np_ > self.room
            if self._layout is not None and (not over or nq <= self.room // 2):
                kq, kp = (nq, np_) if not over else (nq, self.room - nq)
                rows.append(PairRow(qa, pa, kq, kp, self._layout))
            else:  # the tokenizer's own post-processor (another template, or a query past half the room)
                joined = (self._truncating if over else self._plain).post_process(qe, encs[t], add_special_tokens=True)
                rows.append(PairRow(qa, pa, 0, 0, self._layout, enc=joined))
            truncated.append(over)
        return rows, truncated

    def features(self, rows) -> dict[str, np.ndarray]:
        """The rows padded to the longest into int64 arrays (``input_ids``, ``token_type_ids`` when the
        model takes them, ``attention_mask``)."""
        n, width = len(rows), max((len(r) for r in rows), default=0)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)
        types = np.zeros((n, width), dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for r, row in enumerate(rows):
            k = len(row)
            start = width - k if self.left_padding else 0
            if row._enc is None:
                cls, sep = row._layout
                a = start + 1 + row.kq
                ids[r, start] = cls
                ids[r, start + 1:a] = row.q[: row.kq]
                ids[r, a] = sep
                ids[r, a + 1:a + 1 + row.kp] = row.p[: row.kp]
                ids[r, start + k - 1] = sep
                types[r, a + 1:start + k] = 1
            else:
                ids[r, start:start + k] = row._enc.ids
                types[r, start:start + k] = row._enc.type_ids
            mask[r, start:start + k] = 1
        out = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask}
        return {k: out[k] for k in self.names}
