"""The course reranker in ONNX Runtime: export, dynamic int8 quantisation, and a :class:`~course_lib.rerank.Scorer`.

* :func:`export_onnx` — writes the reranker as ``model.onnx`` (inputs ``input_ids``,
  ``attention_mask``, ``token_type_ids``, int64, dynamic batch and sequence axes; output
  ``logits`` of shape ``(batch,)``) with the TorchScript exporter, then checks ONNX Runtime
  against torch on a few pairs and refuses a graph that disagrees.
* :func:`quantize` — dynamic int8 (weights int8 ahead of time, activations quantised per
  batch at run time) of the exported graph: ``"int8"`` quantises every weight MatMul/Gemm,
  ``"selective"`` keeps in fp32 the projections the cosine head is most sensitive to
  (:data:`SELECTIVE_KEEP_FP32`, chosen on tuning claims; see below).
* :class:`OnnxScorer` — a Scorer that tokenises exactly as :class:`~course_lib.rerank.CrossEncoderScorer`
  does and runs the exported (and quantised) graph.  The files are built once per model
  weights and kept under :func:`course_lib.caches.cache_dir` (``onnx/<weights>/``).

Why *selective*?  The head scores ``scale * cos(mean query states, mean document states)``
with a scale near 20, so a small rotation of the final states moves the logit a lot.  Plain
dynamic int8 (one scale per weight tensor) moves logits by up to ~2.9 on tuning pairs.  Nearly
all of that comes from the FFN down projections (``output.dense``, 1536 -> 384, fed by GELU
outputs with a long tail), above all the first layer's: int8 in that one projection alone
moves logits by ~0.6 on average, in the last layer's by ~0.04.  Keeping the whole last layer or
the attention projections in fp32 barely helps.
``"selective"`` keeps the first layer's FFN down projection in fp32 (1 of 36 weight MatMuls) and
quantises the rest with per-channel scales: max |logit change| ~0.76 instead of ~2.9, mean ~0.17
instead of ~0.92, at about the size of full int8 and nearly its speed (``course-lib bench`` on 50 SciFact test claims,
stage 6 of the course reranker: int8 1.51x at NDCG@10 0.692, selective 1.45x at 0.727, the naive loop 0.728; notebook
05).  :data:`SELECTIVE_KEEP_FP32` was picked by ``python -m course_lib.onnx_scorer --tune`` (:func:`tune_selective`) on
30 SciFact *train* claims (the recipe's ``dev_query_ids``), never on the test split, with stage 5 (the logit figures
above are stage 5's).

Example
-------
>>> from course_lib.onnx_scorer import OnnxScorer          # doctest: +SKIP
>>> fast = OnnxScorer(precision="selective")              # doctest: +SKIP
>>> logits = fast.score("Where is the Eiffel Tower?",
...                     ["The Eiffel Tower is in Paris.", "Photosynthesis needs light."])  # doctest: +SKIP
>>> bool(logits[0] > logits[1])                           # doctest: +SKIP
True

Needs ``onnx`` (export and quantisation) and ``onnxruntime`` (scoring):
``pip install onnx onnxruntime``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from course_lib.rerank import (
    CrossEncoderScorer,
    Scorer,
    ScoringStats,
    weights_fingerprint,
)

#: The graph's inputs, in order (those the tokenizer produces are used).
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
#: Precisions :class:`OnnxScorer` offers.
PRECISIONS = ("fp32", "int8", "selective")
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


# -- the scorer --------------------------------------------------------------------------------------
def _default_dir(weights: str) -> Path:
    from course_lib.caches import cache_dir

    return cache_dir() / "onnx" / f"{weights}-v{FORMAT_VERSION}"


def _recipe(precision: str) -> str:
    if precision == "selective":
        return "selective:" + ",".join(SELECTIVE_KEEP_FP32) + (":per-channel" if SELECTIVE_PER_CHANNEL else "")
    return precision


#: How many files this process exported or quantised (tests read it to see the cache work).
BUILDS = {"export": 0, "quantize": 0}


def ensure_model(base: CrossEncoderScorer, precision: str = "fp32", cache_dir=None) -> Path:
    """The ONNX file of ``base``'s weights at ``precision``, exported/quantised only if missing.

    Files live in ``cache_dir`` (default ``caches.cache_dir()/onnx``) under a folder named by the
    weights' fingerprint; the settings of ``base`` (max length, ...) only affect tokenisation,
    so every scorer over the same weights shares them.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    weights = weights_fingerprint(base._transformer())
    folder = _default_dir(weights) if cache_dir is None else Path(cache_dir) / f"{weights}-v{FORMAT_VERSION}"
    fp32 = folder / "model.onnx"
    if not fp32.is_file():
        export_onnx(base, folder)
        BUILDS["export"] += 1
    if precision == "fp32":
        return fp32
    name = "model.int8.onnx" if precision == "int8" else \
        "model.selective-" + hashlib.sha1(_recipe(precision).encode()).hexdigest()[:8] + ".onnx"
    target = folder / name
    if not target.is_file():
        quantize(fp32, target, precision)
        BUILDS["quantize"] += 1
    return target


class OnnxScorer(Scorer):
    """A :class:`~course_lib.rerank.Scorer` running the course reranker in ONNX Runtime (CPU).

    Args:
        base: the :class:`~course_lib.rerank.CrossEncoderScorer` to mirror (None = the course
            reranker).  Its weights are exported; its settings (``max_length``,
            ``max_query_tokens``, ``batch_size``, ``long_documents``, ``calibration``) apply.
        precision: ``"fp32"`` (the same logits to ~1e-5), ``"int8"`` (dynamic int8 everywhere)
            or ``"selective"`` (int8 except :data:`SELECTIVE_KEEP_FP32`).
        cache_dir: where the ONNX files are kept (default ``caches.cache_dir()/onnx``); built on
            first use, reused afterwards (``built`` says whether this construction built any).
        threads: ONNX Runtime intra-op threads (None = its default, all cores).

    Tokenisation is the base's: queries capped to ``max_query_tokens`` word pieces, pairs cut to
    ``max_length`` with ``longest_first`` truncation (what ``CrossEncoder.predict`` does; with a
    capped query it only ever shortens the passage unless the query takes over half of
    ``max_length``).  Pairs are batched ``batch_size`` at a time in length order (little padding)
    and the logits returned in the caller's order.

    >>> onnx_scorer = OnnxScorer(precision="fp32", threads=1)    # doctest: +SKIP
    >>> onnx_scorer.score("red apple", ["a red apple", "a pear"]).shape    # doctest: +SKIP
    (2,)
    """

    def __init__(self, base: CrossEncoderScorer | None = None, precision: str = "fp32", cache_dir=None,
                 threads: int | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        _require("onnxruntime")
        if base is None:
            base = CrossEncoderScorer()
        if not isinstance(base, CrossEncoderScorer):
            raise TypeError(f"base must be a CrossEncoderScorer, got {type(base).__name__}")
        self.precision = precision
        self.threads = threads
        exports, quants = BUILDS["export"], BUILDS["quantize"]
        self.model_path = ensure_model(base, precision, cache_dir)
        self.built = (BUILDS["export"], BUILDS["quantize"]) != (exports, quants)
        self.session = _session(self.model_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._use(base)

    @classmethod
    def from_file(cls, path, base: CrossEncoderScorer | None = None, threads: int | None = None,
                  precision: str = "custom") -> "OnnxScorer":
        """A scorer over an ONNX file you built yourself (:func:`export_onnx`, :func:`quantize`).

        ``precision`` only names the file in :meth:`fingerprint`; the file must come from
        ``base``'s weights (nothing checks that).
        """
        self = cls.__new__(cls)
        self.precision, self.threads, self.built = precision, threads, False
        self.model_path = Path(path)
        self.session = _session(self.model_path, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self._use(base if base is not None else CrossEncoderScorer())
        return self

    def _use(self, base: CrossEncoderScorer) -> None:
        self.base = base
        self.tokenizer = base.tokenizer
        self.max_length = base.max_length
        self.max_query_tokens = base.max_query_tokens
        self.batch_size = base.batch_size
        self.long_documents = base.long_documents
        self.calibration = base.calibration
        self.last_stats = ScoringStats()
        self._fingerprint = None

    def configured(self, **settings) -> "OnnxScorer":
        """This scorer with other :class:`~course_lib.rerank.CrossEncoderScorer` settings
        (same ONNX session; ``autocast`` is accepted and has no effect here)."""
        other = copy.copy(self)
        other._use(self.base.configured(**settings))
        return other

    def fingerprint(self) -> str:
        """The base's fingerprint (weights and settings) plus the precision and its recipe."""
        if self._fingerprint is None:
            recipe = _recipe(self.precision) if self.precision in PRECISIONS else \
                "file:" + hashlib.sha1(self.model_path.read_bytes()).hexdigest()  # from_file: the file itself
            parts = ["onnx", FORMAT_VERSION, recipe, self.base.fingerprint()]
            self._fingerprint = hashlib.sha1("\0".join(map(str, parts)).encode()).hexdigest()[:16]
        return self._fingerprint

    def _run(self, pairs: list[tuple[str, str]]) -> tuple[np.ndarray, int]:
        """Logits of already-capped pairs, and how many pairs were cut to ``max_length``."""
        tok = self.tokenizer
        qs, ts = [q for q, _ in pairs], [t for _, t in pairs]
        full = tok(qs, ts, truncation=False)
        rows = {n: list(full[n]) for n in self.input_names}
        over = [i for i, ids in enumerate(rows["input_ids"]) if len(ids) > self.max_length]
        if over:
            cut = tok([qs[i] for i in over], [ts[i] for i in over], truncation="longest_first",
                      max_length=self.max_length)
            for n in self.input_names:
                for j, i in enumerate(over):
                    rows[n][i] = cut[n][j]
        lengths = np.fromiter((len(ids) for ids in rows["input_ids"]), dtype=np.int64, count=len(pairs))
        order = np.argsort(-lengths, kind="stable")
        pad = {"input_ids": tok.pad_token_id or 0, "attention_mask": 0, "token_type_ids": 0}
        right = getattr(tok, "padding_side", "right") != "left"
        out = np.empty(len(pairs), dtype=np.float32)
        for start in range(0, len(pairs), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = int(lengths[idx].max())
            feed = {}
            for n in self.input_names:
                arr = np.full((len(idx), width), pad[n], dtype=np.int64)
                for r, i in enumerate(idx):
                    seq = rows[n][i]
                    if right:
                        arr[r, :len(seq)] = seq
                    else:
                        arr[r, width - len(seq):] = seq
                feed[n] = arr
            out[idx] = self.session.run(["logits"], feed)[0].reshape(-1)
        return out, len(over)

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw logits of (query, text) pairs, in input order."""
        if not len(pairs):
            self.last_stats = ScoringStats(pairs=0)
            return np.zeros(0, dtype=np.float32)
        flat, owner, stats = self.base.expand_pairs(pairs, self.max_query_tokens, self.long_documents)
        flat_logits, n_cut = self._run(flat)
        if self.long_documents == "truncate":
            stats.truncated = n_cut
        self.last_stats = stats
        out = np.full(len(pairs), -np.inf, dtype=np.float32)
        np.maximum.at(out, np.asarray(owner), flat_logits)
        return out


# -- choosing the selective recipe (on tuning data only) ---------------------------------------------
#: The variants :func:`tune_selective` compares: name -> (keep_fp32 rules, per_channel).
TUNING_VARIANTS = {
    "int8 (all)": (None, False),
    "int8 (all, per-channel)": (None, True),
    "keep last_layer": (("last_layer",), False),
    "keep ffn_out": (("ffn_out",), False),
    "keep ffn_out+attn_out": (("ffn_out", "attn_out"), False),
    "keep last_layer+ffn_out": (("last_layer", "ffn_out"), False),
    "only ffn_in int8": (("query", "key", "value", "attn_out", "ffn_out"), False),
    "keep layer.0/ffn_out, per-channel": (("layer.0/ffn_out",), True),
    "keep ffn_out, per-channel": (("ffn_out",), True),
}


def tune_selective(n_queries: int = 30, k: int = 30, variants=None, work_dir=None, threads: int = 1,
                   data_dir=None) -> list[dict]:
    """Compare quantisation variants on SciFact *train* claims held out from training.

    The claims are the first ``n_queries`` of the recipe's ``dev_query_ids`` (in
    ``course_reranker/assets/training.json``), their candidates the dense top ``k``.  Each row
    gives max and mean |logit - torch fp32 logit| and NDCG@10 of the reranked lists, plus a
    rough single-thread speed (pairs/s; noisy on a shared machine).  The test split is never read.
    """
    from course_lib import metrics
    from course_lib.data import load_beir
    from course_lib.models import course_reranker_path
    from course_lib.runs import first_stage_run

    info = json.loads((course_reranker_path() / "training.json").read_text())
    ds = load_beir("scifact", split="train", data_dir=data_dir)
    ds = ds.subset(sorted(q for q in info["dev_query_ids"] if q in ds.queries)[:n_queries])
    first = first_stage_run(ds, "dense", k)
    keys = [(q, d) for q in sorted(first) for d in sorted(first[q])]
    pairs = [(ds.queries[q], ds.doc_text(d)) for q, d in keys]

    def row(name, logits, seconds, ref):
        run: dict[str, dict[str, float]] = {}
        for (q, d), s in zip(keys, logits):
            run.setdefault(q, {})[d] = float(s)
        ref_run: dict[str, dict[str, float]] = {}
        for (q, d), s in zip(keys, ref):
            ref_run.setdefault(q, {})[d] = float(s)
        overlap = [len(set(metrics.ranked(run[q], 10)) & set(metrics.ranked(ref_run[q], 10))) / 10 for q in run]
        return {"variant": name, "ndcg@10": metrics.mean(metrics.ndcg(run, ds.qrels, 10)),
                "max_abs_dlogit": float(np.max(np.abs(logits - ref))),
                "mean_abs_dlogit": float(np.mean(np.abs(logits - ref))),
                "top10_overlap": float(np.mean(overlap)),
                "pairs_per_s": len(pairs) / seconds if seconds else None}

    base = CrossEncoderScorer()
    work = Path(work_dir) if work_dir is not None else Path(tempfile.mkdtemp(prefix="onnx-tune-"))
    work.mkdir(parents=True, exist_ok=True)

    def cached_logits(tag, compute):  # logits on disk, so variants can be compared over several calls
        f = work / f"logits-{tag}-{base.fingerprint()}-{FORMAT_VERSION}-{n_queries}-{k}.npz"
        if f.is_file():
            saved = np.load(f)
            return saved["logits"], float(saved["seconds"])
        t = time.perf_counter()
        logits = compute()
        seconds = time.perf_counter() - t
        np.savez(f, logits=logits, seconds=seconds)
        return logits, seconds

    ref, torch_s = cached_logits("torch", lambda: base.score_pairs(pairs))
    rows = [row("torch fp32", ref, torch_s, ref),
            {**row("dense first stage", np.asarray([first[q][d] for q, d in keys], dtype=np.float32), None, ref),
             "max_abs_dlogit": None, "mean_abs_dlogit": None}]  # other units: only the rankings compare
    fp32 = ensure_model(base, "fp32", work)
    plan = {"onnx fp32": None, **TUNING_VARIANTS} if variants is None else dict(variants)
    for name, spec in plan.items():
        tag = hashlib.sha1(repr(spec).encode()).hexdigest()[:8]
        path = fp32
        if spec is not None:
            rules, per_channel = spec
            path = fp32.parent / f"tune-{tag}.onnx"
            if not path.is_file():
                quantize(fp32, path, "int8" if rules is None else "selective", keep_fp32=rules,
                         per_channel=per_channel)

        def compute(path=path):
            scorer = OnnxScorer.from_file(path, base, threads=threads)
            scorer.score_pairs(pairs[: base.batch_size])  # warm-up
            return scorer.score_pairs(pairs)

        logits, seconds = cached_logits(tag, compute)
        rows.append({**row(name, logits, seconds, ref), "mb": path.stat().st_size / 2**20})
    return rows


if __name__ == "__main__":  # python -m course_lib.onnx_scorer --tune [n_queries]
    import sys

    if sys.argv[1:2] == ["--tune"]:
        from course_lib.env import configure

        configure(offline=True)
        n = int(sys.argv[2]) if len(sys.argv) > 2 else 30
        names = sys.argv[3:]  # optional subset of variant names ("onnx fp32" or keys of TUNING_VARIANTS)
        chosen = None if not names else {m: ({"onnx fp32": None} | TUNING_VARIANTS)[m] for m in names}
        for r in tune_selective(n_queries=n, variants=chosen, work_dir=os.environ.get("ONNX_TUNE_DIR")):
            print(json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in r.items()}))
    else:
        print("usage: python -m course_lib.onnx_scorer --tune [n_queries [variant ...]]")
