import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

from course_lib.course_reranker.modeling import (
    CourseRerankerConfig,
    CourseRerankerModel,
    register,
    segment_means,
)
from course_lib.models import bundled_embedder_path


def test_segment_means_exclude_special_tokens_and_padding():
    hidden = torch.arange(6, dtype=torch.float32).view(1, 6, 1).repeat(1, 1, 2)
    ids = torch.tensor([[101, 5, 6, 102, 7, 102]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1]])
    tt = torch.tensor([[0, 0, 0, 0, 1, 1]])
    q, d = segment_means(hidden, ids, mask, tt, [0, 101, 102])
    assert q.tolist() == [[1.5, 1.5]]  # positions 1 and 2
    assert d.tolist() == [[4.0, 4.0]]  # position 4 only


def test_empty_segment_gives_zero_not_nan():
    hidden = torch.ones(1, 3, 2)
    q, d = segment_means(hidden, torch.tensor([[101, 102, 102]]), torch.ones(1, 3), torch.tensor([[0, 0, 1]]), [101, 102])
    assert torch.isfinite(q).all() and torch.isfinite(d).all()


def test_register_is_idempotent_and_auto_classes_resolve():
    register()
    register()
    assert isinstance(AutoConfig.for_model("course-reranker"), CourseRerankerConfig)


def test_tiny_model_roundtrip_through_auto_class(tmp_path):
    register()
    cfg = CourseRerankerConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=64, head_scale=7.0, head_bias=-1.0)
    model = CourseRerankerModel(cfg).eval()
    assert float(model.logit_scale) == 7.0 and float(model.logit_bias) == -1.0
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CourseRerankerModel)
    tok = AutoTokenizer.from_pretrained(str(bundled_embedder_path()))
    enc = tok(["a question"], ["an answer"], return_tensors="pt")
    with torch.no_grad():
        a = model(**enc).logits
        b = loaded(**enc).logits
    assert a.shape == (1, 1)
    torch.testing.assert_close(a, b)
    out = loaded(**enc, labels=torch.tensor([1.0]))
    assert out.loss is not None and out.loss.item() > 0


def test_missing_token_type_ids_is_a_clear_error():
    cfg = CourseRerankerConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    model = CourseRerankerModel(cfg)
    import pytest

    with pytest.raises(ValueError, match="token_type_ids"):
        model(input_ids=torch.tensor([[101, 5, 102, 6, 102]]))
