"""The course's one runtime policy: offline by default, no telemetry, quiet libraries.

Notebooks (through :func:`course_lib.notebook.setup`), the command line, the tests and the
scripts all call :func:`configure`, so they behave alike.

Why a function and not just environment variables?  ``huggingface_hub`` reads
``HF_HUB_OFFLINE`` once, when it is first imported.  In JupyterLab it often is imported
before the first cell runs, so setting the variable afterwards changes nothing; a hub id then
retries the network for more than a minute.  :func:`configure` sets the variables *and* the
already-imported library's switch.

Example
-------
>>> import os
>>> configure(offline=True)["offline"], os.environ["HF_HUB_OFFLINE"]
(True, '1')
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

QUIET_LOGGERS = ("transformers", "sentence_transformers", "chromadb", "httpx", "huggingface_hub", "bm25s", "urllib3")


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """Whether hub downloads are switched off (``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE``)."""
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def configure(offline: bool | None = True, quiet: bool = False, progress_bars: bool | None = None) -> dict:
    """Apply the course's policy to this process; returns what is now in force.

    Args:
        offline: True: hub ids resolve from the local cache only and an uncached one fails at
            once; False: online (a learner who wants hub models); None: leave as the
            environment says.
        quiet: library logs at ERROR, third-party warnings off, hub progress bars off (what a
            notebook's stored outputs need).
        progress_bars: force ``huggingface_hub``/``transformers`` download bars on or off
            (None: off when ``quiet``).

    Always: no Chroma telemetry, no tokenizer fork warnings.
    """
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if offline is not None:
        value = "1" if offline else "0"
        os.environ["HF_HUB_OFFLINE"] = value
        os.environ["TRANSFORMERS_OFFLINE"] = value
        hub_constants = sys.modules.get("huggingface_hub.constants")
        if hub_constants is not None:  # imported already: its switch was read at import time
            hub_constants.HF_HUB_OFFLINE = bool(offline)
    if progress_bars is None:
        progress_bars = not quiet
    if not progress_bars:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if quiet:
        warnings.filterwarnings("ignore")
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        if "transformers" in sys.modules:
            try:
                import transformers

                transformers.utils.logging.set_verbosity_error()
                transformers.utils.logging.disable_progress_bar()
            except Exception:  # noqa: BLE001 - quieting must never fail a notebook
                pass
        else:
            os.environ["TRANSFORMERS_VERBOSITY"] = "error"
            os.environ["TRANSFORMERS_NO_ADVISORY_WARNINGS"] = "1"
    return {"offline": is_offline(), "quiet": quiet, "progress_bars": bool(progress_bars)}


# -- the lock: what a learner's environment should hold ----------------------------------------
def lock_file():
    """``requirements.lock`` at the root of the checkout this package runs from, or None (an installed copy)."""
    from pathlib import Path

    p = Path(__file__).resolve().parents[1] / "requirements.lock"
    return p if p.is_file() else None


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def locked_versions(path=None) -> dict[str, str]:
    """``{distribution: version}`` pinned by the lock for *this* interpreter and platform (markers applied).

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "requirements.lock"
    >>> _ = p.write_text("# a comment\\nnumpy==2.4.6\\ntomli==2.5.0 ; python_full_version < '3.0'\\n")
    >>> locked_versions(p)
    {'numpy': '2.4.6'}
    """
    from packaging.requirements import Requirement

    path = path or lock_file()
    out: dict[str, str] = {}
    if path is None:
        return out
    for line in open(path, encoding="utf-8"):
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate():
            continue
        pins = [s.version for s in req.specifier if s.operator == "=="]
        if pins:
            out[_normalise(req.name)] = pins[0]
    return out


def version_matches(installed: str, locked: str) -> bool:
    """Whether an installed version is the locked one; a local build label (``2.13.0+cpu``) matches ``2.13.0``.

    >>> version_matches("2.13.0+cpu", "2.13.0"), version_matches("6.2.0", "6.3.0")
    (True, False)
    """
    return installed == locked or installed.split("+", 1)[0] == locked


def lock_mismatches(path=None) -> list[tuple[str, str | None, str]]:
    """``(distribution, installed version or None, locked version)`` for every locked package that differs."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name, want in sorted(locked_versions(path).items()):
        try:
            have = version(name)
        except PackageNotFoundError:
            have = None
        if have is None or not version_matches(have, want):
            out.append((name, have, want))
    return out
