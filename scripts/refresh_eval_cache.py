"""Copy the evaluation caches for the benchmark collections into eval_cache/ (run after `course-lib eval`).

    python scripts/refresh_eval_cache.py --data $COURSE_DATA_DIR
"""
import argparse
import shutil
from pathlib import Path

from course_lib.env import configure

configure(offline=True)

from course_lib.caches import find_cached, embedding_file  # noqa: E402
from course_lib.data import load_beir  # noqa: E402
from course_lib.models import load_embedder  # noqa: E402
from course_lib.scorers.cross_encoder import CrossEncoderScorer  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--data", required=True)
ap.add_argument("--datasets", nargs="+", default=["scifact", "cranfield"])
args = ap.parse_args()
out = Path(__file__).resolve().parents[1] / "eval_cache"
(out / "scores").mkdir(parents=True, exist_ok=True)
emb, fp = load_embedder(), CrossEncoderScorer().fingerprint()
for old in (out / "scores").glob("*.json.gz"):
    if not old.name.startswith(fp):
        old.unlink()
keep = set()
for name in args.datasets:
    ds = load_beir(name, "test", data_dir=args.data)
    e = embedding_file(name, ds.corpus, emb)
    s = f"scores/{fp}-{name}.json.gz"
    for rel in (e, s):
        src = find_cached(rel)  # the user cache first, then the shipped one (embeddings rarely change)
        if src is None:
            raise SystemExit(f"missing {rel}: run course-lib eval on {name} first")
        if src != out / rel:
            shutil.copy2(src, out / rel)
        keep.add(rel)
        print(f"{'kept' if src == out / rel else 'copied'} {rel} ({src.stat().st_size / 1e6:.1f} MB)")
for old in out.glob("emb-*.npy"):
    if old.name not in keep:
        old.unlink()
