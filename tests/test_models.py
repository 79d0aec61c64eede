import pytest

from course_lib.models import (
    ModelLoadError,
    course_reranker_path,
    load_embedder,
    load_reranker,
)


def test_embedder_loads_offline():
    emb = load_embedder()
    assert emb.encode(["hello"]).shape == (1, 384)


def test_shipped_reranker_loads_via_load_reranker_and_ranks():
    ce = load_reranker()
    s = ce.predict([
        ("How do vaccines protect against disease?", "Vaccines train the immune system to recognise a pathogen."),
        ("How do vaccines protect against disease?", "The stock market closed higher on Friday."),
    ])
    assert s[0] > s[1]


def test_shipped_reranker_loads_with_plain_crossencoder():
    from sentence_transformers import CrossEncoder

    from course_lib.course_reranker.modeling import register

    register()  # what load_reranker does: the Auto classes know the course reranker

    ce = CrossEncoder(str(course_reranker_path()))
    s = ce.predict([("Who painted the Mona Lisa?", "Leonardo da Vinci painted the Mona Lisa."),
                    ("Who painted the Mona Lisa?", "Volcanoes form where magma rises.")])
    assert s[0] > s[1]
    assert 0.0 <= s.min() and s.max() <= 1.0  # default activation: sigmoid


def test_unknown_hub_id_fails_fast_offline():
    with pytest.raises(ModelLoadError, match="offline default"):
        load_reranker("no-such-org/no-such-reranker")


def test_bad_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load_reranker(str(tmp_path / "missing-dir"))


def test_env_var_overrides_default(monkeypatch):
    monkeypatch.setenv("COURSE_RERANKER", "no-such-org/env-model")
    with pytest.raises(ModelLoadError, match="env-model"):
        load_reranker()
