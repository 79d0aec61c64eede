"""The ONNX Runtime scorer (course_lib.scorers.onnx).

The fast tests need neither a model nor onnx; the slow ones export the course reranker once
per session into a temporary cache folder (a few seconds) and quantise it.
"""
import os

import numpy as np
import pytest

from course_lib.scorers import onnx as ox
from course_lib.scorers import onnx_export as ox_export

pytest.importorskip("onnxruntime")


PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("does aspirin reduce the risk of heart attack",
     "Low-dose aspirin lowers the risk of a first myocardial infarction in adults at high risk. " * 15),
    ("photosynthesis", "The stock market fell sharply on Tuesday."),
    ("x " * 100, "a short passage"),  # query capped to max_query_tokens
    ("empty passage", ""),
]


RELEVANT = "The Eiffel Tower is a wrought-iron lattice tower in Paris, France."


IRRELEVANT = "Photosynthesis converts light energy into chemical energy in plants."


def test_bad_arguments_fail_clearly(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        ox.OnnxScorer(precision="fp16", cache_dir=tmp_path)
    with pytest.raises(TypeError, match="CrossEncoderScorer"):
        ox.OnnxScorer(base="not a scorer", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="mode"):
        ox_export.quantize(tmp_path / "m.onnx", tmp_path / "q.onnx", "int4")
    with pytest.raises(FileNotFoundError):
        ox_export.quantize(tmp_path / "missing.onnx", tmp_path / "q.onnx", "int8")


# -- slow: the course reranker ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def fp32(course_model, onnx_cache):
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    pytest.importorskip("onnx")
    return ox.OnnxScorer(CrossEncoderScorer(course_model), "fp32", cache_dir=onnx_cache, threads=1)


@pytest.fixture(scope="module")
def int8(course_model, onnx_cache, fp32):
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    return ox.OnnxScorer(CrossEncoderScorer(course_model), "int8", cache_dir=onnx_cache, threads=1)


@pytest.mark.slow
def test_fp32_matches_torch(course_scorer, fp32):
    ref = course_scorer.score_pairs(PAIRS)
    got = fp32.score_pairs(PAIRS)
    assert got.shape == (len(PAIRS),) and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-3, rtol=0)
    assert fp32.last_stats.truncated == course_scorer.last_stats.truncated == 1
    assert fp32.last_stats.queries_capped == 1
    assert fp32.calibration == course_scorer.calibration


@pytest.mark.slow
def test_caller_order_restored_across_batches(course_scorer, fp32):
    small_batches = fp32.configured(batch_size=2)  # lengths differ, so sorting reorders across batches
    mixed = [PAIRS[2], PAIRS[1], PAIRS[0], PAIRS[4], PAIRS[1], PAIRS[3]]
    one_by_one = np.array([fp32.score_pairs([p])[0] for p in mixed])
    np.testing.assert_allclose(small_batches.score_pairs(mixed), one_by_one, atol=1e-4, rtol=0)
    np.testing.assert_allclose(small_batches.score_pairs(mixed[::-1]), one_by_one[::-1], atol=1e-4, rtol=0)
    assert fp32.score_pairs([]).shape == (0,)


@pytest.mark.slow
def test_maxp_matches_torch(course_scorer, fp32):
    long_doc = "Filler sentence about nothing in particular. " * 60 + "Aspirin reduces heart attack risk."
    pair = [("aspirin heart attack", long_doc)]
    ref = course_scorer.configured(long_documents="maxp").score_pairs(pair)
    onnx_maxp = fp32.configured(long_documents="maxp")
    np.testing.assert_allclose(onnx_maxp.score_pairs(pair), ref, atol=1e-3, rtol=0)
    assert onnx_maxp.last_stats.windows > 1


@pytest.mark.slow
def test_int8_differs_but_still_ranks(fp32, int8):
    q = "Where is the Eiffel Tower?"
    a, b = fp32.score(q, [RELEVANT, IRRELEVANT]), int8.score(q, [RELEVANT, IRRELEVANT])
    assert not np.allclose(a, b, atol=1e-4)  # quantised for real
    assert b[0] > b[1] + 2.0


@pytest.mark.slow
def test_selective_ranks_and_keeps_fp32_nodes(course_scorer, onnx_cache, fp32):
    import onnx

    sel = ox.OnnxScorer(course_scorer, "selective", cache_dir=onnx_cache, threads=1)
    q = "Where is the Eiffel Tower?"
    s = sel.score(q, [RELEVANT, IRRELEVANT])
    assert s[0] > s[1] + 2.0
    assert np.max(np.abs(s - fp32.score(q, [RELEVANT, IRRELEVANT]))) < 1.5
    sites = ox_export.matmul_sites(fp32.model_path)
    kept = ox_export.select_nodes(sites, ox_export.SELECTIVE_KEEP_FP32)
    fp32_matmuls = {n.name for n in onnx.load(str(sel.model_path)).graph.node if n.op_type == "MatMul"}
    assert kept and fp32_matmuls & set(sites) == set(kept)  # exactly those weights stay fp32
    assert len(sites) == 36  # 6 layers x (q, k, v, attention output, FFN in, FFN out)


@pytest.mark.slow
def test_fingerprints_differ_by_precision(course_scorer, fp32, int8, onnx_cache):
    sel = ox.OnnxScorer(course_scorer, "selective", cache_dir=onnx_cache, threads=1)
    prints = {fp32.fingerprint(), int8.fingerprint(), sel.fingerprint(), course_scorer.fingerprint()}
    assert len(prints) == 4
    assert fp32.configured(max_length=128).fingerprint() != fp32.fingerprint()


@pytest.mark.slow
def test_cache_reuses_exported_files(course_scorer, tmp_path):
    pytest.importorskip("onnx")
    first = ox.OnnxScorer(course_scorer, "int8", cache_dir=tmp_path, threads=1)
    assert first.built
    files = sorted(p for p in tmp_path.rglob("*.onnx"))
    stamps = {p: os.stat(p).st_mtime_ns for p in files}
    builds = dict(ox.BUILDS)
    again = ox.OnnxScorer(course_scorer, "int8", cache_dir=tmp_path, threads=1)
    assert not again.built and ox.BUILDS == builds
    assert again.model_path == first.model_path
    assert {p: os.stat(p).st_mtime_ns for p in files} == stamps
    assert sorted(tmp_path.rglob("*.onnx")) == files  # no temporary files left behind
    fp = ox.OnnxScorer(course_scorer, "fp32", cache_dir=tmp_path, threads=1)  # the fp32 file is shared
    assert not fp.built and ox.BUILDS == builds
