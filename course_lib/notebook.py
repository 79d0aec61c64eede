"""One call at the top of every notebook: offline, quiet logs, no progress bars in stored outputs, seeds.

>>> from course_lib.notebook import setup
>>> setup(seed=0)["offline"]
True
"""

from __future__ import annotations

import random

from course_lib.env import configure


def setup(seed: int = 0, offline: bool = True) -> dict:
    """Make a notebook's stored outputs deterministic and free of download/loading noise.

    * the course's runtime policy (:func:`course_lib.env.configure`): offline unless
      ``offline=False`` — effective even when ``huggingface_hub`` was imported before this
      call — library logs at ERROR, third-party warnings and download bars off;
    * Python, NumPy and torch seeded;
    * figures at a size that reads well in JupyterLab.

    Returns the policy in force.
    """
    policy = configure(offline=offline, quiet=True)
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
    return policy
