"""Tokenising pairs once (course_lib.scorers.pair_encoding): the tokenizer's own ids, without tokenising dropped text."""
import random

import numpy as np
import pytest

from course_lib.scorers.pair_encoding import PairEncoder

EDGE_CASES = [
    ("  leading space query", "  text with   spaces  "),
    ("q", ""),
    ("x " * 100, "a short passage"),                                    # a long query: both sides truncated
    ("émigré café naïve", "Ünïcödé tëxt with àccents " * 200),
    ("中文 问题", "中文文本没有空格" * 300 + " and then words " * 100),      # no spaces to cut at
    ("q", "\u200b " * 500 + "word " * 300),                             # words the normaliser drops entirely
    ("q", "a\x1cb " * 400),                                             # a separator Python splits on, BERT does not
    ("q", "tab\tseparated\nlines\rhere " * 200),
    ("a", "word" * 50),                                                 # one long word
]


@pytest.fixture(scope="module")
def tokenizer(course_model):
    return course_model.tokenizer


@pytest.fixture(scope="module")
def pairs(course_ds):
    rng = random.Random(0)
    docs = sorted(course_ds.corpus)
    long_docs = [" ".join(course_ds.doc_text(d) for d in rng.sample(docs, 6)) for _ in range(40)]  # longer than any limit
    qs = [course_ds.queries[q] for q in sorted(course_ds.queries)[:20]]
    return [(q, t) for q in qs for t in rng.sample(long_docs, 5) + [course_ds.doc_text(d) for d in rng.sample(docs, 5)]] + EDGE_CASES


@pytest.mark.parametrize("max_length", [192, 128, 32, 8])
def test_the_ids_and_truncation_flags_are_the_tokenizers_own(tokenizer, pairs, max_length):
    enc = PairEncoder(tokenizer, max_length)
    rows, truncated = enc.encode(pairs)
    qs, ts = [q for q, _ in pairs], [t for _, t in pairs]
    ref = tokenizer(qs, ts, truncation="longest_first", max_length=max_length)
    full = tokenizer(qs, ts, truncation=False)["input_ids"]
    assert [r.ids for r in rows] == ref["input_ids"]
    assert [r.type_ids for r in rows] == ref["token_type_ids"]
    assert truncated == [len(f) > max_length for f in full]
    assert any(truncated) and not all(truncated)


def test_long_passages_are_cut_before_tokenising_and_only_at_spaces(tokenizer):
    enc = PairEncoder(tokenizer, 16)
    text = " ".join(f"w{i:02d}" for i in range(100))   # 3 characters a word, and a space
    cut = enc.cut(text, 10)                                # 10 tokens' worth: 60 characters, whole words only
    assert cut == " ".join(f"w{i:02d}" for i in range(15)) and enc.cut("short text", 10) is None
    assert enc.cut("a\x1cb " * 400, 10).endswith("a\x1cb")  # \x1c is not a place to cut: BERT joins its neighbours
    assert enc.cut("x" * 500, 10) is None                  # no space: nothing to cut at


def test_features_pad_like_the_model_would(course_model, pairs):
    enc = PairEncoder(course_model.tokenizer, 192)
    batch = pairs[:12]
    mine = enc.features(enc.encode(batch)[0])
    theirs = course_model.preprocess(batch)
    assert set(mine) == {"input_ids", "token_type_ids", "attention_mask"}
    for k, v in mine.items():
        np.testing.assert_array_equal(v, theirs[k].numpy())


def test_queries_are_tokenised_once_across_calls_and_passages_once_per_call(tokenizer, monkeypatch):
    enc = PairEncoder(tokenizer, 64)
    cache = {}
    enc.encode([("same query", "a"), ("same query", "b")], cache)
    first = cache["same query"]
    enc.encode([("same query", "c")], cache)
    assert list(cache) == ["same query"] and cache["same query"] is first
    seen = []
    real = enc._encode_batch
    monkeypatch.setattr(enc, "_encode_batch", lambda texts, **kw: seen.extend(texts) or real(texts, **kw))
    enc.encode([("q1", "shared passage"), ("q2", "shared passage"), ("q1", "other")])
    assert sorted(seen) == ["other", "q1", "q2", "shared passage"]


def test_a_slow_tokenizer_is_refused_clearly():
    class Slow:
        pass

    with pytest.raises(TypeError, match="fast tokenizer"):
        PairEncoder(Slow(), 64)


def test_random_lengths_around_every_boundary(tokenizer):
    """Queries and passages of every length near the limits: the shorter/longer side, the halves, the cut."""
    rng = random.Random(7)
    words = ["cell", "protein", "unbelievable", "x", "2.5", "naïve", "-", "receptor", "a", "tokenisation"]
    pairs = [(" ".join(rng.choices(words, k=rng.randint(1, 30))), " ".join(rng.choices(words, k=rng.randint(0, 90))))
             for _ in range(400)]
    for max_length in (8, 12, 17, 24, 40):
        rows, truncated = PairEncoder(tokenizer, max_length).encode(pairs)
        ref = tokenizer([q for q, _ in pairs], [t for _, t in pairs], truncation="longest_first", max_length=max_length)
        assert [r.ids for r in rows] == ref["input_ids"], max_length
        full = tokenizer([q for q, _ in pairs], [t for _, t in pairs], truncation=False)["input_ids"]
        assert truncated == [len(f) > max_length for f in full]


def test_a_passage_cut_to_tokens_reads_as_the_same_first_tokens(tokenizer, pairs):
    enc = PairEncoder(tokenizer, max_length=128)
    texts = list(dict.fromkeys(p for _, p in pairs))
    for n in (1, 7, 60):
        cut, flags = enc.cut_to_tokens(texts, n)
        for text, c, flag in zip(texts, cut, flags):
            full = tokenizer(text, add_special_tokens=False)["input_ids"]
            assert tokenizer(c, add_special_tokens=False)["input_ids"] == full[:n]
            assert flag == (len(full) > n)
        tail, _ = enc.cut_to_tokens(texts, n, from_end=True)
        for text, c in zip(texts, tail):
            full = tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = tokenizer(c, add_special_tokens=False)["input_ids"]
            assert len(ids) <= n and ids == full[len(full) - len(ids):]  # from a word's start: at most n tokens
    q = "a short query"
    assert enc.passage_budget(q) == 128 - 3 - len(tokenizer(q, add_special_tokens=False)["input_ids"])
    with pytest.raises(ValueError):
        enc.cut_to_tokens(texts, 0)
