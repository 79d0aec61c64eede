"""One call at the top of every notebook: quiet logs, no progress bars in stored outputs, seeds.

>>> from course_lib.notebook import setup
>>> setup(seed=0)
"""

from __future__ import annotations

import logging
import os
import random
import warnings


def setup(seed: int = 0, offline: bool = True) -> None:
    """Make a notebook's stored outputs deterministic and free of download/loading noise.

    * ``HF_HUB_OFFLINE=1`` unless ``offline=False`` (hub names fail fast instead of retrying);
    * transformers / sentence-transformers logs at ERROR and their progress bars off;
    * warnings from third-party libraries silenced (they would land in stored outputs);
    * Python, NumPy and torch seeded; torch at 2 threads at most, for repeatable timings.
    """
    if offline:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    warnings.filterwarnings("ignore")
    for name in ("transformers", "sentence_transformers", "chromadb", "httpx", "huggingface_hub", "bm25s"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except Exception:  # noqa: BLE001
        pass
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    try:
        import matplotlib

        matplotlib.rcParams["figure.dpi"] = 80
    except Exception:  # noqa: BLE001
        pass
