"""Do the course's checked outputs survive another CPU's arithmetic?  Re-run them under other numeric paths.

A learner's laptop or a CI runner may lack this machine's vector instructions (AVX-512) or run another
thread count; its libraries then add floating-point numbers in another order and results move in the
seventh decimal.  Each *profile* below forces one such path on this machine:

    avx2       every library on its AVX2 code: OpenBLAS (numpy's matrix products) as on a Haswell,
               numpy's own SIMD without AVX-512, torch's kernels, MKL and oneDNN at AVX2
    threads1   one thread everywhere (other summation orders in threaded reductions)

Two commands:

    python scripts/numeric_paths.py probe               # which knobs change which numbers, and by how much
    python scripts/numeric_paths.py nbval avx2 threads1 --paths notebooks solutions
                                                        # the checked notebooks under each profile (pytest --nbval)

``nbval`` runs with an empty score cache (``COURSE_CACHE_DIR``), as a fresh clone does; a checked output
that depends on float noise fails there.  Timings are for looking only: a forced code path can be slow.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROFILES = {
    "default": {},
    "openblas-haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "numpy-no-avx512": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL"},
    "torch-avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "threads1": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
}
PROFILES["avx2"] = {**PROFILES["openblas-haswell"], **PROFILES["numpy-no-avx512"], **PROFILES["torch-avx2"]}

PROBE = r"""
import json, sys, time
import numpy as np
from course_lib.env import configure
configure(offline=True, quiet=True)
from course_lib.data import load_course_corpus
from course_lib.dense import encode_texts
from course_lib.scorers.cross_encoder import CrossEncoderScorer
ds = load_course_corpus()
texts = [ds.queries[q] for q in sorted(ds.queries)]
docs = [ds.doc_text(d) for d in sorted(ds.corpus)]
t = time.perf_counter()
q = encode_texts(texts, show_progress=False)
d = encode_texts(docs[:200], show_progress=False)
t_emb = time.perf_counter() - t
sims32 = q @ d.T                                           # numpy float32 (OpenBLAS)
scorer = CrossEncoderScorer()
t = time.perf_counter()
logits = scorer.score_pairs([(a, b) for a in texts[:8] for b in docs[:25]])
t_ce = time.perf_counter() - t
json.dump({"query_emb": q.tolist(), "sims32": sims32.tolist(), "logits": np.asarray(logits).tolist(),
           "seconds": {"embed": t_emb, "cross-encoder": t_ce}}, sys.stdout)
"""


def _env(profile: str) -> dict:
    env = dict(os.environ)
    for name in set().union(*PROFILES.values()):
        env.pop(name, None)
    env.update(PROFILES[profile])
    return env


def probe(profiles: list[str]) -> int:
    import numpy as np

    runs = {}
    for name in ["default", *[p for p in profiles if p != "default"]]:
        out = subprocess.run([sys.executable, "-c", PROBE], env=_env(name), capture_output=True, text=True, check=True)
        runs[name] = json.loads(out.stdout)
    base = runs["default"]
    print(f"{'profile':18s} {'query emb':>10s} {'f32 cosines':>12s} {'CE logits':>10s}   max |difference| from default; seconds embed / CE")
    for name, r in runs.items():
        diffs = [float(np.max(np.abs(np.array(r[k]) - np.array(base[k])))) for k in ("query_emb", "sims32", "logits")]
        s = r["seconds"]
        print(f"{name:18s} {diffs[0]:10.1e} {diffs[1]:12.1e} {diffs[2]:10.1e}   {s['embed']:.1f} / {s['cross-encoder']:.1f}")
    return 0


def nbval(profiles: list[str], paths: list[str]) -> int:
    worst = 0
    for name in profiles:
        env = _env(name)
        env["COURSE_CACHE_DIR"] = tempfile.mkdtemp(prefix=f"course-cache-{name}-")
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--nbval", "--nbval-current-env",
               "--nbval-sanitize-with", "nbval_sanitize.cfg", "--nbval-cell-timeout=1800", *paths]
        print(f"== profile {name}: {' '.join(f'{k}={v}' for k, v in PROFILES[name].items()) or '(none)'}", flush=True)
        t = time.time()
        rc = subprocess.run(cmd, cwd=ROOT, env=env).returncode
        print(f"== profile {name}: exit {rc} in {time.time() - t:.0f} s", flush=True)
        worst = max(worst, rc)
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("probe", help="how far each knob moves embeddings, cosines and logits")
    p.add_argument("profiles", nargs="*", default=[k for k in PROFILES if k != "default"])
    n = sub.add_parser("nbval", help="run the checked notebooks under each profile")
    n.add_argument("profiles", nargs="+", choices=sorted(PROFILES))
    n.add_argument("--paths", nargs="+", default=["notebooks", "solutions"])
    args = ap.parse_args(argv)
    from course_lib.env import configure

    configure(offline=True)
    return probe(args.profiles) if args.command == "probe" else nbval(args.profiles, args.paths)


if __name__ == "__main__":
    sys.exit(main())
