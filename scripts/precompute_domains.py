"""Write the shipped caches notebook 04 reads (MedQuAD and ObliQA), after a model change.

1. Executes a copy of ``notebooks/04_domain_applications.ipynb``: every pair it reads that no cache
   holds is scored by the live model and stored in the user cache (:func:`course_lib.caches.cache_dir`);
   the corpus embeddings are computed there too if missing (about 15 minutes on 2 CPU cores).
2. Copies into ``eval_cache/``: the corpus embeddings of ``medquad`` and ``obliqa``, the course
   reranker's score files for both collections, and the fine-tuned medical reranker's (its
   fingerprint comes from ``eval_cache/domains/medquad-reranker.json``, written by
   ``scripts/train_medical_reranker.py``).

    COURSE_DATA_DIR=../shared/datasets python scripts/precompute_domains.py

``tests/test_eval_cache.py`` re-scores a random sample of every shipped file with the live models.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_domain_applications.ipynb"


def main() -> None:
    if not os.environ.get("COURSE_DATA_DIR"):
        sys.exit("set COURSE_DATA_DIR to the folder holding medquad/ and obliqa/")
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    from course_lib.caches import cache_dir, embedding_file
    from course_lib.data import load_beir
    from course_lib.models import load_embedder
    from course_lib.scorers.cross_encoder import CrossEncoderScorer

    t0 = time.perf_counter()
    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    with tempfile.TemporaryDirectory() as tmp:
        ExecutePreprocessor(timeout=7200, kernel_name="python3").preprocess(nb, {"metadata": {"path": str(NOTEBOOK.parent)}})
        nbformat.write(nb, str(Path(tmp) / NOTEBOOK.name))
    print(f"notebook executed in {time.perf_counter() - t0:.0f} s")

    seed = ROOT / "eval_cache"
    emb = load_embedder()
    for name in ("medquad", "obliqa"):
        ds = load_beir(name, "test")
        f = embedding_file(name, ds.corpus, emb)
        if (cache_dir() / f).is_file():
            shutil.copy2(cache_dir() / f, seed / f)
            print("copied", f)
    fps = {CrossEncoderScorer().fingerprint(): ("medquad", "obliqa")}
    ft = json.loads((seed / "domains" / "medquad-reranker.json").read_text())
    fps[ft["fingerprint"]] = ("medquad",)
    (seed / "scores").mkdir(parents=True, exist_ok=True)
    for fp, names in fps.items():
        for name in names:
            src = cache_dir() / "scores" / f"{fp}-{name}.json.gz"
            if src.is_file():
                shutil.copy2(src, seed / "scores" / src.name)
                print("copied", src.name)


if __name__ == "__main__":
    main()
