"""Execute notebooks in place (outputs are committed and checked by nbval).

    python scripts/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb

Each notebook runs in its own folder with the offline defaults; the kernel is this
interpreter's.  Exercises are regenerated from the solutions afterwards.
"""
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib.env import configure

configure(offline=True)  # kernels inherit the environment


def execute(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(str(path), as_version=4)
    t = time.time()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:  # keep diffs small: no per-run metadata
        cell.metadata.pop("execution", None)
    nbformat.write(nb, str(path))
    return time.time() - t


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]]
    for p in paths:
        print(f"executing {p} ...", flush=True)
        print(f"  done in {execute(p):.0f} s", flush=True)
    if any(p.parent.name == "solutions" for p in paths):
        from course_lib.grading import generate_all

        for p in generate_all("solutions", "exercises"):
            print(f"regenerated {p}")
