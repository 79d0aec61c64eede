"""Export the course reranker to ONNX and quantise it (dynamic int8): the build step of
:class:`course_lib.scorers.onnx.OnnxScorer`.

* :func:`export_onnx` — writes the reranker as ``model.onnx`` (inputs ``input_ids``,
  ``attention_mask``, ``token_type_ids``, int64, dynamic batch and sequence axes; output
  ``logits`` of shape ``(batch,)``) with the TorchScript exporter, then checks ONNX Runtime
  against torch on a few pairs and refuses a graph that disagrees.
* :func:`quantize` — dynamic int8 (weights int8 ahead of time, activations quantised per
  batch at run time) of the exported graph: ``"int8"`` quantises every weight MatMul/Gemm,
  ``"selective"`` keeps in fp32 the projections the cosine head is most sensitive to
  (:data:`SELECTIVE_KEEP_FP32`, chosen on tuning claims; see :mod:`course_lib.scorers.onnx`).

Needs ``onnx`` (export and quantisation) and ``onnxruntime``: ``pip install onnx onnxruntime``.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from course_lib.scorers.cross_encoder import CrossEncoderScorer, weights_fingerprint

#: The graph's inputs, in order (those the tokenizer produces are used).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Default ONNX opset (17 has ``LayerNormalization``).
DEFAULT_OPSET = 17
#: Largest |logit(ONNX fp32) - logit(torch)| :func:`export_onnx` accepts.
EXPORT_ATOL = 1e-3
#: Weight projections of a BERT layer, as :func:`matmul_sites` names them.
SUBLAYERS = ("query", "key", "value", "attn_out", "ffn_in", "ffn_out")
#: What ``"selective"`` keeps in fp32: sublayer names, ``"last_layer"`` (every projection of the
#: final encoder layer), ``"layer.<i>"`` or ``"layer.<i>/<sublayer>"``.  Chosen on tuning claims (module docstring).
SELECTIVE_KEEP_FP32 = ("layer.0/ffn_out",)
#: ``"selective"`` quantises the other weights with one scale per output column (``int8`` uses one
#: per tensor).  Chosen with :data:`SELECTIVE_KEEP_FP32`.
SELECTIVE_PER_CHANNEL = True
#: Bumped whenever export or a quantisation recipe changes what the files hold.
FORMAT_VERSION = 1

_SITE = re.compile(
    r"layer\.(\d+)/(?:attention/self/(query|key|value)|attention/(output)/dense"
    r"|(intermediate)/dense|(output)/dense)/MatMul"
)
_CHECK_PAIRS = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("does aspirin reduce the risk of heart attack", "Low-dose aspirin lowers the risk of a first myocardial "
     "infarction in adults at high cardiovascular risk, at the cost of more bleeding. " * 12),
    ("photosynthesis", "The stock market fell sharply on Tuesday."),
]


# -- optional dependencies -------------------------------------------------------------------------
def _require(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = {"onnx": "onnx", "onnxruntime": "onnxruntime"}[module.split(".")[0]]
        raise ImportError(
            f"{module} is needed for ONNX export and scoring but is not installed: pip install {pkg}"
        ) from exc


# -- export -----------------------------------------------------------------------------------------
def _resolve_scorer(scorer_or_model_dir) -> CrossEncoderScorer:
    if isinstance(scorer_or_model_dir, CrossEncoderScorer):
        return scorer_or_model_dir
    if scorer_or_model_dir is None or isinstance(scorer_or_model_dir, (str, os.PathLike)):
        return CrossEncoderScorer(scorer_or_model_dir)
    raise TypeError(
        "expected a CrossEncoderScorer, a model directory or None (the course reranker), "
        f"got {type(scorer_or_model_dir).__name__}"
    )


def _input_names(tokenizer) -> list[str]:
    names = [n for n in INPUT_NAMES if n in getattr(tokenizer, "model_input_names", INPUT_NAMES)]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ValueError(f"the tokenizer must produce input_ids and attention_mask (it names {names})")
    return names


def _encode(tokenizer, pairs, max_length: int, names) -> dict[str, np.ndarray]:
    enc = tokenizer([q for q, _ in pairs], [t for _, t in pairs], padding=True, truncation="longest_first",
                    max_length=max_length, return_tensors="np")
    return {n: np.asarray(enc[n], dtype=np.int64) for n in names}


def _session(path, threads: int | None = None):
    ort = _require("onnxruntime")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        if int(threads) < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _default_dir(weights: str) -> Path:
    from course_lib.caches import cache_dir

    return cache_dir() / "onnx" / f"{weights}-v{FORMAT_VERSION}"


def _atomic_target(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp.onnx", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def export_onnx(scorer_or_model_dir=None, out_dir=None, opset: int = DEFAULT_OPSET, *,
                atol: float = EXPORT_ATOL, filename: str = "model.onnx") -> Path:
    """Export a cross-encoder to ``out_dir/filename`` and check it against torch.

    Args:
        scorer_or_model_dir: a :class:`~course_lib.rerank.CrossEncoderScorer`, a saved model
            directory, or None (the course reranker).
        out_dir: where to write (default: ``cache_dir()/onnx/<weights fingerprint>``).
        opset: ONNX opset (17 or later).
        atol: largest |logit difference| to torch on the check pairs; above it the file is
            deleted and a ``RuntimeError`` raised.

    Returns:
        The path of the ONNX file: inputs ``input_ids``, ``attention_mask`` (and
        ``token_type_ids`` when the tokenizer makes them), int64 ``(batch, seq)``; output
        ``logits``, float32 ``(batch,)`` — the raw logits ``CrossEncoderScorer`` returns.

    Uses ``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter; needs ``onnx`` but
    not ``onnxscript``) on a CPU float32 copy of the model with eager attention, so the shared
    model is never changed.

    >>> path = export_onnx(out_dir="/tmp/course-onnx")      # doctest: +SKIP
    >>> path.name                                          # doctest: +SKIP
    'model.onnx'
    """
    import torch

    _require("onnx")
    if int(opset) < 17:
        raise ValueError(f"opset must be 17 or later (LayerNormalization), got {opset}")
    scorer = _resolve_scorer(scorer_or_model_dir)
    hf = scorer._transformer()
    if getattr(hf.config, "num_labels", 1) != 1:
        raise ValueError(f"only one-logit cross-encoders can be exported (this one has {hf.config.num_labels} labels)")
    out_dir = Path(out_dir) if out_dir is not None else _default_dir(weights_fingerprint(hf))
    path = out_dir / filename
    names = _input_names(scorer.tokenizer)

    model = copy.deepcopy(hf).to("cpu", torch.float32).eval()
    if hasattr(model, "set_attn_implementation"):
        try:  # eager attention: a plain MatMul/Softmax graph, and no data-dependent SDPA fast paths
            model.set_attn_implementation("eager")
        except Exception:  # noqa: BLE001 - a model without the switch exports as it is
            pass

    class _Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids=None):
            kw = {"input_ids": input_ids, "attention_mask": attention_mask}
            if token_type_ids is not None:
                kw["token_type_ids"] = token_type_ids
            return self.inner(**kw).logits.reshape(-1)

    wrapper = _Logits(model).eval()
    # two pairs of different lengths, so the traced graph carries padding and a real mask
    dummy = _encode(scorer.tokenizer, _CHECK_PAIRS[:2], min(scorer.max_length, 64), names)
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["logits"] = {0: "batch"}
    tmp = _atomic_target(path)
    try:
        import warnings

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TracerWarnings about shape-only Python branches
            torch.onnx.export(
                wrapper, tuple(torch.from_numpy(dummy[n]) for n in names), str(tmp),
                input_names=names, output_names=["logits"], dynamic_axes=dyn,
                opset_version=int(opset), do_constant_folding=True, dynamo=False,
            )
        diff = _check_against_torch(wrapper, tmp, scorer, names)
        if not diff <= atol:
            raise RuntimeError(
                f"the exported ONNX graph disagrees with torch: max |logit difference| {diff:.2e} > {atol:g} "
                f"on {len(_CHECK_PAIRS)} check pairs (torch {torch.__version__}, opset {opset}); not saved"
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _write_meta(path, export={"torch_max_abs_diff": diff, "opset": int(opset), "torch": torch.__version__,
                              "weights": weights_fingerprint(hf), "format": FORMAT_VERSION})
    return path


def _check_against_torch(wrapper, path, scorer, names) -> float:
    import torch

    sess = _session(path)
    worst = 0.0
    # a padded batch at full length (one pair truncated), then a single unpadded pair
    for pairs in (_CHECK_PAIRS, _CHECK_PAIRS[:1]):
        enc = _encode(scorer.tokenizer, pairs, scorer.max_length, names)
        with torch.no_grad():
            ref = wrapper(*(torch.from_numpy(enc[n]) for n in names)).numpy()
        got = sess.run(["logits"], enc)[0]
        if got.shape != ref.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def _write_meta(model_path: Path, **entries) -> None:
    meta_path = model_path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except ValueError:
        meta = {}
    meta.update(entries)
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True))


# -- quantisation ------------------------------------------------------------------------------------
def matmul_sites(onnx_path) -> dict[str, tuple[int, str]]:
    """``{node name: (layer, sublayer)}`` for every weight MatMul of the encoder layers.

    ``sublayer`` is one of :data:`SUBLAYERS`: the attention ``query``/``key``/``value`` and
    output (``attn_out``) projections, and the FFN up (``ffn_in``) and down (``ffn_out``) ones.
    """
    onnx = _require("onnx")
    model = onnx.load(str(onnx_path), load_external_data=False)
    out = {}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm"):
            continue
        m = _SITE.search(node.name)
        if not m:
            continue
        layer = int(m.group(1))
        if m.group(2):
            sub = m.group(2)
        elif m.group(3):
            sub = "attn_out"
        elif m.group(4):
            sub = "ffn_in"
        else:
            sub = "ffn_out"
        out[node.name] = (layer, sub)
    return out


def select_nodes(sites: dict[str, tuple[int, str]], keep_fp32: Sequence[str]) -> list[str]:
    """Names of the nodes in ``sites`` that ``keep_fp32`` (see :data:`SELECTIVE_KEEP_FP32`) names.

    >>> sites = {"a": (0, "ffn_out"), "b": (5, "query"), "c": (5, "ffn_in")}
    >>> select_nodes(sites, ["ffn_out"]), select_nodes(sites, ["last_layer"]), select_nodes(sites, ["layer.5/ffn_in"])
    (['a'], ['b', 'c'], ['c'])
    """
    last = max((layer for layer, _ in sites.values()), default=-1)
    chosen = []
    for name, (layer, sub) in sites.items():
        for rule in keep_fp32:
            if rule == "last_layer":
                hit = layer == last
            elif rule.startswith("layer.") and "/" in rule:  # one projection of one layer: "layer.3/ffn_out"
                where, what = rule.split("/", 1)
                hit = layer == int(where.split(".", 1)[1]) and sub == what
            elif rule.startswith("layer."):
                hit = layer == int(rule.split(".", 1)[1])
            elif rule in SUBLAYERS:
                hit = sub == rule
            else:
                raise ValueError(f"unknown rule {rule!r}: use {', '.join(SUBLAYERS)}, 'last_layer', 'layer.<i>' "
                                 "or 'layer.<i>/<sublayer>'")
            if hit:
                chosen.append(name)
                break
    return chosen


class _DropPreprocessHint(logging.Filter):
    def filter(self, record):
        return not str(record.msg).startswith("Please consider to run pre-processing before quantization")


def quantize(onnx_path, out_path, mode: str = "int8", *, keep_fp32: Sequence[str] | None = None,
             per_channel: bool | None = None, reduce_range: bool = False) -> Path:
    """Dynamic int8 quantisation of an exported reranker (``onnxruntime.quantization.quantize_dynamic``).

    Args:
        mode: ``"int8"`` quantises the weights of every MatMul/Gemm; ``"selective"`` does the
            same but keeps the projections named by ``keep_fp32`` in fp32.
        keep_fp32: rules for ``"selective"`` (default :data:`SELECTIVE_KEEP_FP32`): sublayer
            names from :data:`SUBLAYERS`, ``"last_layer"`` or ``"layer.<i>"``.
        per_channel: one int8 scale per output column instead of one per tensor (None: False
            for ``"int8"``, :data:`SELECTIVE_PER_CHANNEL` for ``"selective"``).
        reduce_range: 7-bit weights (for CPUs without VNNI; passed to ``quantize_dynamic``).

    Weights become signed int8 (``QInt8``); only MatMuls with a constant weight are quantised,
    so the attention score products stay in fp32.

    >>> fp32 = export_onnx(out_dir="/tmp/course-onnx")                          # doctest: +SKIP
    >>> quantize(fp32, fp32.with_name("model.int8.onnx"), "int8").name          # doctest: +SKIP
    'model.int8.onnx'
    """
    qz = _require("onnxruntime.quantization")
    if mode not in ("int8", "selective"):
        raise ValueError(f"mode must be 'int8' or 'selective', got {mode!r}")
    if mode == "int8" and keep_fp32:
        raise ValueError("keep_fp32 applies to mode='selective' only")
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"no ONNX model at {onnx_path}")
    if per_channel is None:
        per_channel = SELECTIVE_PER_CHANNEL if mode == "selective" else False
    exclude: list[str] = []
    if mode == "selective":
        rules = tuple(SELECTIVE_KEEP_FP32 if keep_fp32 is None else keep_fp32)
        sites = matmul_sites(onnx_path)
        if not sites:
            raise ValueError(f"{onnx_path} has no encoder-layer MatMuls this module recognises; use mode='int8'")
        exclude = select_nodes(sites, rules)
    tmp = _atomic_target(out_path)
    root = logging.getLogger()
    quiet = _DropPreprocessHint()
    root.addFilter(quiet)  # its advice (shape inference for *static* quantisation) does not apply here
    try:
        qz.quantize_dynamic(
            onnx_path, tmp, op_types_to_quantize=["MatMul", "Gemm"], per_channel=per_channel,
            reduce_range=reduce_range, weight_type=qz.QuantType.QInt8, nodes_to_exclude=exclude or None,
            extra_options={"MatMulConstBOnly": True},
        )
        os.replace(tmp, out_path)
    finally:
        root.removeFilter(quiet)
        tmp.unlink(missing_ok=True)
    recipe = {"mode": mode, "per_channel": per_channel, "reduce_range": reduce_range, "kept_fp32": sorted(exclude),
              "keep_rules": list(keep_fp32 or SELECTIVE_KEEP_FP32) if mode == "selective" else []}
    _write_meta(out_path, quantization=recipe)
    return out_path
