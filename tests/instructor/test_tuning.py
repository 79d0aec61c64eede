"""Choosing the ONNX selective recipe (course_lib.instructor.tuning): its variants and its command."""
import pytest

from course_lib.instructor import tuning


def test_every_variant_is_a_valid_quantisation_recipe():
    from course_lib.scorers.onnx_export import select_nodes

    sites = {f"n{i}": (i // 6, s) for i, s in enumerate(["query", "key", "value", "attn_out", "ffn_in", "ffn_out"] * 6)}
    for name, (rules, per_channel) in tuning.TUNING_VARIANTS.items():
        assert isinstance(per_channel, bool)
        if rules is not None:
            assert select_nodes(sites, rules), name  # every rule names real projections


def test_the_command_rejects_an_unknown_variant():
    with pytest.raises(KeyError):
        tuning.main(["3", "no such variant"])
