import pytest
import torch


def test_group_softmax_cross_entropy_puts_all_mass_on_positives():
    from course_lib.losses import group_softmax_cross_entropy

    logits = torch.tensor([2.0, 1.0, -1.0])
    expected = -torch.log_softmax(logits, 0)[0]
    assert group_softmax_cross_entropy(logits, [1, 0, 0]).item() == pytest.approx(expected.item())
    two = group_softmax_cross_entropy(logits, [1, 1, 0]).item()
    assert two == pytest.approx(-0.5 * torch.log_softmax(logits, 0)[:2].sum().item())
    with pytest.raises(ValueError, match="positive"):
        group_softmax_cross_entropy(logits, [0, 0, 0])
