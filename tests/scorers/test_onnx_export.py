"""ONNX export and quantisation (course_lib.scorers.onnx_export): node selection, clear install errors,
and an export checked against torch."""
import json
import sys

import pytest

from course_lib.scorers import onnx_export as ox_export

pytest.importorskip("onnxruntime")


# -- fast: no model ------------------------------------------------------------------------------
def test_select_nodes_rules():
    sites = {"a": (0, "ffn_out"), "b": (5, "query"), "c": (5, "ffn_in"), "d": (2, "attn_out")}
    assert ox_export.select_nodes(sites, ["ffn_out"]) == ["a"]
    assert ox_export.select_nodes(sites, ["last_layer"]) == ["b", "c"]
    assert ox_export.select_nodes(sites, ["layer.2"]) == ["d"]
    assert ox_export.select_nodes(sites, ["layer.5/ffn_in", "ffn_out"]) == ["a", "c"]
    with pytest.raises(ValueError, match="unknown rule"):
        ox_export.select_nodes(sites, ["mlp"])


def test_missing_onnx_names_the_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # what an uninstalled package looks like to import
    with pytest.raises(ImportError, match="pip install onnx"):
        ox_export._require("onnx")
    with pytest.raises(ImportError, match="pip install onnx"):
        ox_export.export_onnx(object(), tmp_path)  # before any model work


@pytest.mark.slow
def test_export_verifies_and_writes_logits_output(course_scorer, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = ox_export.export_onnx(course_scorer, tmp_path)
    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    out = model.graph.output[0]
    assert out.name == "logits" and len(out.type.tensor_type.shape.dim) == 1
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["export"]["torch_max_abs_diff"] < ox_export.EXPORT_ATOL
    with pytest.raises(RuntimeError, match="disagrees with torch"):
        ox_export.export_onnx(course_scorer, tmp_path / "strict", atol=-1.0)
    assert not (tmp_path / "strict" / "model.onnx").exists()
