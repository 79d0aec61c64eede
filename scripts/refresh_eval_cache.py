"""Copy the evaluation caches for the benchmark collections into eval_cache/ (run after `course-lib eval`).

    python scripts/refresh_eval_cache.py --data $COURSE_DATA_DIR
"""
import argparse
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from course_lib.data import load_beir
from course_lib.dense import _fingerprint, cache_dir, corpus_fingerprint, embedder_fingerprint
from course_lib.evaluation import model_fingerprint
from course_lib.models import load_embedder
from course_lib.rerank import CrossEncoderScorer

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
args = ap.parse_args()
out = Path(__file__).resolve().parents[1] / "eval_cache"
(out / "scores").mkdir(parents=True, exist_ok=True)
emb, fp = load_embedder(), model_fingerprint(CrossEncoderScorer())
for old in (out / "scores").glob("*.json.gz"):
    if not old.name.startswith(fp):
        old.unlink()
keep = set()
for name in args.datasets:
    ds = load_beir(name, "test", data_dir=args.data)
    e = f"emb-{_fingerprint(name, corpus_fingerprint(ds.corpus), embedder_fingerprint(emb))}.npy"
    s = f"scores/{fp}-{name}.json.gz"
    for rel in (e, s):
        src = cache_dir() / rel
        if not src.is_file():
            raise SystemExit(f"missing {src}: run course-lib eval on {name} first")
        shutil.copy2(src, out / rel)
        keep.add(rel)
        print(f"copied {rel} ({src.stat().st_size / 1e6:.1f} MB)")
for old in out.glob("emb-*.npy"):
    if old.name not in keep:
        old.unlink()
