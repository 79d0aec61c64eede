"""The course's runtime policy (course_lib.env).  Each check runs in a fresh interpreter: the point
is what happens to a ``huggingface_hub`` that was imported *before* the policy was applied."""
import json
import os
import subprocess
import sys

import pytest


def run_clean(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter whose environment has no hub/transformers offline switch."""
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out


# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_configure_offline_reaches_an_already_imported_huggingface_hub():
    out = run_clean(
        "import json, os, huggingface_hub, huggingface_hub.constants as c\n"
        "before = c.HF_HUB_OFFLINE\n"
        "from course_lib.env import configure\n"
        "policy = configure(offline=True)\n"
        "print(json.dumps([before, c.HF_HUB_OFFLINE, os.environ['HF_HUB_OFFLINE'], policy['offline']]))\n"
    )
    before, after, env_value, reported = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False  # the subprocess really started online
    assert after is True and env_value == "1" and reported is True


@pytest.mark.parametrize("offline", [True, False])
def test_configure_switches_both_ways(offline):
    out = run_clean(
        "import json, huggingface_hub.constants as c\n"
        "from course_lib.env import configure\n"
        f"configure(offline={not offline})\n"
        f"configure(offline={offline})\n"
        "print(json.dumps(c.HF_HUB_OFFLINE))\n"
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) is offline
