import json
import os
import subprocess
import sys

# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_setup_makes_an_already_imported_huggingface_hub_offline():
    """JupyterLab often imports huggingface_hub before the first cell; setup() must still take effect."""
    env = {k: v for k, v in os.environ.items() if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"}}
    code = (
        "import json, huggingface_hub, huggingface_hub.constants as c\n"
        "before = c.HF_HUB_OFFLINE\n"
        "from course_lib.notebook import setup\n"
        "policy = setup(seed=0)\n"
        "print(json.dumps([before, c.HF_HUB_OFFLINE, policy['offline']]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after, reported = json.loads(out.stdout.strip().splitlines()[-1])
    assert before is False and after is True and reported is True
