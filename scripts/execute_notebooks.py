"""Execute notebooks in place (outputs are committed and checked by nbval).

    python scripts/execute_notebooks.py notebooks/*.ipynb solutions/*.ipynb

Each notebook runs in its own folder with the offline defaults; the kernel is this interpreter's.
They run against an empty user cache (as a fresh clone does), so they read only what ships in
``eval_cache/``; afterwards what they had to compute live is added there (``--no-ship`` to skip): query
embeddings, corpus embeddings, and the shipped reranker's scores for pairs its score files lacked — so
that the next run, anyone's on any CPU, reads the same numbers.  Exercises are regenerated from the
solutions afterwards.
"""
import argparse
import os
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from course_lib.env import configure

ROOT = Path(__file__).resolve().parents[1]


def execute(path: Path, timeout: int = 900) -> float:
    nb = nbformat.read(str(path), as_version=4)
    t = time.time()
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:  # keep diffs small: no per-run metadata
        cell.metadata.pop("execution", None)
    nbformat.write(nb, str(path))
    return time.time() - t


def ship_new_cache_entries(cache: Path, seed: Path = ROOT / "eval_cache") -> int:
    """Add to ``seed`` what the run computed live; returns how many entries were added.

    Query vectors (``queries/``) and corpus embeddings (``emb-*.npy``) are added when absent; scores are
    merged only into score files already shipped (the shipped model's), never for a model made in the run.
    """
    import gzip
    import json
    import shutil

    from course_lib.caches import QueryEmbeddingCache

    cache, added = Path(cache), 0
    for path in sorted((cache / "queries").glob("*.npz")):
        target = seed / "queries" / path.name
        shipped = QueryEmbeddingCache.read(target)
        new = {t: v for t, v in QueryEmbeddingCache.read(path).items() if t not in shipped}
        if new:
            QueryEmbeddingCache.write(target, {**shipped, **new})
        added += len(new)
        print(f"{target.relative_to(ROOT)}: {len(shipped) + len(new)} queries ({len(new)} added)")
    for path in sorted(cache.glob("emb-*.npy")):
        if not (seed / path.name).exists():
            shutil.copy2(path, seed / path.name)
            added += 1
            print(f"eval_cache/{path.name}: corpus embeddings added")
    for path in sorted((cache / "scores").glob("*.json.gz")):
        target = seed / "scores" / path.name
        if not target.exists():
            continue
        with gzip.open(target, "rt", encoding="utf-8") as fh:
            shipped = json.load(fh)
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            mine = json.load(fh)
        new = sum(d not in shipped.get(q, {}) for q in mine for d in mine[q])
        if new:
            for q, docs in mine.items():
                shipped.setdefault(q, {}).update({d: v for d, v in docs.items() if d not in shipped.get(q, {})})
            with gzip.open(target, "wt", encoding="utf-8") as fh:
                json.dump(shipped, fh)
            added += new
            print(f"{target.relative_to(ROOT)}: {new} scored pairs added")
    return added


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("--cache-dir", type=Path, default=None, help="user cache to run with (default: a new empty one)")
    ap.add_argument("--no-ship", action="store_true", help="do not add what was computed live to eval_cache/")
    args = ap.parse_args()
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="course-cache-"))
    os.environ["COURSE_CACHE_DIR"] = str(cache)  # kernels inherit the environment
    configure(offline=True)
    for p in args.paths:
        print(f"executing {p} ...", flush=True)
        print(f"  done in {execute(p):.0f} s", flush=True)
    if not args.no_ship:
        ship_new_cache_entries(cache)
    if any(p.parent.name == "solutions" for p in args.paths):
        from course_lib.grading import generate_all

        for p in generate_all("solutions", "exercises"):
            print(f"regenerated {p}")
