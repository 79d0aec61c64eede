"""``course-lib``: the course's command line (offline by default; ``--online`` lets hub ids download).

learners:
    course-lib check                      environment check, [OK]/[FAIL] per line
    course-lib eval --data DIR ...        first stage vs reranked vs fused, as JSON or a table
    course-lib grade exercises/NN.ipynb   grade an exercise notebook
    course-lib serve [--port 8000]        the reranking service over HTTP (127.0.0.1 by default)
    course-lib loadtest --url URL ...     a bounded load test of a service on this machine
    course-lib cost --core-hour P ...     machine-hours and cost per 1,000 queries from speed records

instructors (how the shipped course reranker was made; not needed to take the course) have their own
entry point: ``python -m course_lib.instructor --help``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
from course_lib import settings


def _ok(flag: bool, text: str) -> bool:
    print(f"[{'OK' if flag else 'FAIL'}] {text}")
    return flag


_KEY_PACKAGES = [  # (import name, distribution name): listed by name; every locked package is compared below
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("sentence_transformers", "sentence-transformers"),
    ("chromadb", "chromadb"),
    ("langchain_core", "langchain-core"),
    ("langchain_classic", "langchain-classic"),
    ("langchain_chroma", "langchain-chroma"),
    ("langchain_huggingface", "langchain-huggingface"),
    ("bm25s", "bm25s"),
    ("onnxruntime", "onnxruntime"),
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("ipywidgets", "ipywidgets"),
    ("nbval", "nbval"),
]


def display_path(path) -> str:
    """A path as a learner reads it: relative to the checkout (or beside it), else under ``~``; never a machine's layout.

    >>> from pathlib import Path
    >>> import course_lib
    >>> root = Path(course_lib.__file__).resolve().parents[1]
    >>> display_path(root / "course_lib" / "course_reranker" / "assets")
    'course_lib/course_reranker/assets'
    >>> display_path(root.parent / "shared" / "datasets")
    '../shared/datasets'
    """
    from pathlib import Path

    import course_lib

    p = Path(path).resolve()
    root = Path(course_lib.__file__).resolve().parents[1]
    for base, prefix in ((root, ""), (root.parent, "../")):
        try:
            return prefix + p.relative_to(base).as_posix()
        except ValueError:
            pass
    try:
        return "~/" + p.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(p)


def _warn(text: str) -> None:
    print(f"[WARN] {text}")


def _check_lock(lock=None) -> bool:
    """Compare every installed package the lock pins with its locked version; print [OK] or [WARN] lines."""
    from course_lib.env import lock_file, lock_mismatches, locked_versions

    path = lock or lock_file()
    if path is None:
        print("[OK] requirements.lock: not found beside this copy of course_lib (an installed copy; nothing to compare)")
        return True
    pinned = locked_versions(path)
    wrong = lock_mismatches(path)
    if not wrong:
        print(f"[OK] all {len(pinned)} locked packages installed at their locked versions (requirements.lock)")
        return True
    shown = ", ".join(f"{n} {have or 'missing'} (locked {want})" for n, have, want in wrong[:8])
    more = f" and {len(wrong) - 8} more" if len(wrong) > 8 else ""
    _warn(f"{len(wrong)} of {len(pinned)} locked packages differ from requirements.lock: {shown}{more}")
    print("       outputs may differ from the course's; `make setup` (or `bash scripts/setup.sh`) installs the locked "
          "versions, and the README says how to upgrade on purpose")
    return False


def _cmd_check(args) -> int:
    """Print [OK]/[FAIL] for Python, packages, both models and the data directory; [WARN] where versions differ from the lock."""
    good = True
    v = sys.version_info
    good &= _ok((3, 10) <= v[:2] < (3, 14), f"Python {platform.python_version()} (need 3.10-3.13)")
    from importlib.metadata import version

    from course_lib.env import locked_versions, version_matches

    pinned = locked_versions(args.lock)
    for mod, dist in _KEY_PACKAGES:
        try:
            importlib.import_module(mod)
            ver = version(dist)
        except Exception as exc:  # noqa: BLE001
            good &= _ok(False, f"{mod}: {type(exc).__name__}: {exc}")
            continue
        want = pinned.get(dist)
        if want is None or version_matches(ver, want):
            _ok(True, f"{mod} {ver}")
        else:
            _warn(f"{mod} {ver} (locked {want})")
    _check_lock(args.lock)
    try:
        from course_lib.models import load_embedder

        emb = load_embedder()
        vec = emb.encode(["hello world"], normalize_embeddings=True)
        good &= _ok(vec.shape == (1, 384), f"bi-encoder all-MiniLM-L6-v2 (bundled), dim {vec.shape[1]}")
    except Exception as exc:  # noqa: BLE001
        good &= _ok(False, f"bi-encoder: {exc}")
    try:
        from course_lib.models import course_reranker_path, load_reranker

        ce = load_reranker()
        s = ce.predict(
            [("Where is the Eiffel Tower?", "The Eiffel Tower stands in Paris, France."),
             ("Where is the Eiffel Tower?", "Photosynthesis converts light into chemical energy.")]
        )
        good &= _ok(bool(s[0] > s[1]),
                    f"course reranker at {display_path(course_reranker_path())} ranks a relevant passage first")
    except Exception as exc:  # noqa: BLE001
        good &= _ok(False, f"course reranker: {exc}")
    try:
        from course_lib.data import load_course_corpus

        ds = load_course_corpus()
        good &= _ok(len(ds.corpus) > 100, f"built-in course corpus: {len(ds.corpus)} passages, {len(ds.queries)} queries")
    except Exception as exc:  # noqa: BLE001
        good &= _ok(False, f"course corpus: {exc}")
    from course_lib.data import default_data_dir

    dd = args.data or default_data_dir()
    if dd is None:
        print("[OK] data directory: not set (optional; set COURSE_DATA_DIR for SciFact/Cranfield, e.g. ../shared/datasets)")
    else:
        from pathlib import Path

        p = Path(dd)
        found = sorted(x.name for x in p.iterdir() if (x / "corpus.jsonl").is_file()) if p.is_dir() else []
        if (p / "corpus.jsonl").is_file():
            found = [p.name]
        good &= _ok(bool(found), f"data directory {display_path(p)}: {', '.join(found) or 'no BEIR-layout dataset found'}")
    print("All checks passed." if good else "Some checks failed: see [FAIL] lines above.")
    return 0 if good else 1


def _cmd_eval(args) -> int:
    from course_lib.data import load_beir
    from course_lib.evaluation import evaluate_pipeline
    from course_lib.fusion import DEFAULT_FUSION_WEIGHT

    ds = load_beir(args.data, args.split, data_dir=args.data_dir)
    first_only = args.reranker is not None and args.reranker.lower() == "none"
    scorer = None
    if not first_only:
        from course_lib.models import load_reranker
        from course_lib.scorers.cross_encoder import CrossEncoderScorer

        scorer = CrossEncoderScorer(load_reranker(args.reranker), max_length=args.max_length)
    w = DEFAULT_FUSION_WEIGHT if args.fusion_weight is None else args.fusion_weight
    res = evaluate_pipeline(ds, args.first_stage, args.k, scorer, w, args.max_queries, use_cache=not args.no_cache,
                            show_progress=not args.json, first_only=first_only, sample=args.sample, seed=args.seed)
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        rows = [("first stage (" + args.first_stage + ")", res["first_stage"])]
        if "reranked" in res:
            rows += [("cross-encoder alone", res["reranked"]), (f"fused (w={w})", res["fused"])]
        keys = [k for k in res["first_stage"] if k != "name"]
        print(f"{ds.name} {ds.split}: {res['n_queries']} queries, top {args.k}")
        print(f"{'system':28s}" + "".join(f"{k:>11s}" for k in keys))
        for name, row in rows:
            print(f"{name:28s}" + "".join(f"{row[k]:11.4f}" for k in keys))
    return 0


def _cmd_bench(args) -> int:
    from course_lib.bench import bench, default_variants
    from course_lib.data import course_query_split, load_beir

    if args.data == "course":
        ds = course_query_split()[1]  # the evaluation half: the reranker never trained on it
    else:
        ds = load_beir(args.data, args.split, data_dir=args.data_dir)
    if args.max_queries:
        ds = ds.subset(sorted(ds.queries)[: args.max_queries])
    first = None
    if args.run:
        from course_lib.runs import read_trec

        first = read_trec(args.run)
    res = bench(ds, k=args.k, variants=default_variants(args.variants), show_progress=True, repeat=args.repeat,
                first=first, host=args.host)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    keys = ["speedup", "ms_per_query", "p50_ms", "p95_ms", "pairs_per_s", "ndcg@10", "top10_identical",
            "top10_set_identical", "top10_overlap", "peak_mb"]
    print(f"{res['dataset']} {res['split']}: {res['n_queries']} queries x top {res['k']} ({res['first_stage']})"
          + (f", each query {res['repeat']} times" if res["repeat"] > 1 else ""))
    print(f"{'variant':24s}" + "".join(f"{k[:11]:>12s}" for k in keys))
    for row in [res["naive"], *res["variants"]]:
        print(f"{row['name']:24s}" + "".join(f"{row[k]:12.3f}" if isinstance(row[k], float) else f"{row[k]:>12}" for k in keys))
    if "host" in res:
        h = res["host"]
        print(f"\nhost path alone (no forward pass): {h['pairs']} pairs at max length {h['max_length']}")
        for row in h["rows"]:
            print(f"{row['name']:24s}{row['pairs_per_s']:12.1f} pairs/s{row['vs_naive']:8.2f}x the naive loop's")
    return 0


def _cmd_convert(args) -> int:
    from course_lib.data import convert_pairs

    ds = convert_pairs(args.source, args.output, split=args.split, overwrite=args.overwrite)
    n_judged = sum(len(j) for j in ds.qrels.values())
    print(f"wrote {args.output}: {len(ds.corpus)} passages, {len(ds.queries)} queries, {n_judged} judgements "
          f"(qrels/{args.split}.tsv); load it with course_lib.data.load_beir({str(args.output)!r}, {args.split!r})")
    return 0


def _cmd_grade(args) -> int:
    from course_lib.grading import grade_all, grade_notebook

    if args.all:
        return grade_all(args.notebook or "exercises", timeout=args.timeout)
    if not args.notebook:
        print("error: give an exercise notebook, or --all", file=sys.stderr)
        return 2
    return grade_notebook(args.notebook, timeout=args.timeout)


def _cmd_serve(args) -> int:
    from course_lib.service.config import ServiceConfig
    from course_lib.service.server import run_server

    try:
        config = ServiceConfig.from_args(args)
        config = config.replace(api_key=config.resolved_api_key())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.ray and config.rollout_plan() is not None:
        print("error: --shadow and --canary run in one process; not with --ray", file=sys.stderr)
        return 2
    if args.ray:
        import time

        from course_lib.service import ray_serve

        ray_serve.start(config)
        print(f"Ray Serve: {config.replicas} replicas on http://{config.host}:{config.port} (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            ray_serve.stop()
        return 0
    plan = config.rollout_plan()
    also = f"; {plan[0]} {plan[1]} on {plan[2]:.0%} of requests" if plan else ""
    print(f"serving on http://{config.host}:{config.port} ({'micro-batching' if config.batching else 'no batching'}"
          f"{also}; Ctrl-C stops)", flush=True)
    run_server(config)
    return 0


def _cmd_loadtest(args) -> int:
    import asyncio

    from course_lib.service.loadtest import check_loopback, offline_pairs_per_s, run_load, workload

    try:
        check_loopback(args.url)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    reqs = workload(args.requests, args.dataset, args.k, args.repeat_fraction, data_dir=args.data_dir)
    res = asyncio.run(run_load(args.url, reqs, args.concurrency, args.deadline_ms, args.api_key or settings.api_key(),
                               max_seconds=args.max_seconds))
    from course_lib.bench import machine

    res["machine"] = machine()  # loopback only: the server's machine too (what course-lib cost reads)
    if args.offline_baseline:  # the same pairs scored in this process, no HTTP, after the load is over
        res["offline_pairs_per_s"] = round(offline_pairs_per_s(reqs), 1)
        res["service_vs_offline"] = round(res["pairs_per_s"] / res["offline_pairs_per_s"], 3) if res["pairs_per_s"] else None
    if not args.latencies:
        res.pop("latencies_ms")
    if args.json:
        print(json.dumps(res, indent=1))
    else:
        for key, v in res.items():
            if key != "latencies_ms":
                print(f"{key:22s} {v}")
    return 0 if res["errors"] == 0 else 1


def _cmd_cost(args) -> int:
    from course_lib.service.cost import DEFAULT_RECORDS, cost_rows, format_table, load_record

    try:
        records = [load_record(r) for r in (args.record or DEFAULT_RECORDS)]
        rows = cost_rows(records, core_hour=args.core_hour, gpu_hour=args.gpu_hour, k=args.k,
                         cache_hit_rate=args.cache_hit_rate, only=args.only)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(format_table(rows, args.currency))
    k = f"K = {args.k}" if args.k else "each record's own K"
    prices = ", ".join(p for p in (f"{args.currency}{args.core_hour}/core-hour" if args.core_hour is not None else "",
                                   f"{args.currency}{args.gpu_hour}/GPU-hour" if args.gpu_hour is not None else "") if p)
    print(f"\nper 1,000 queries at {k}, cache hit rate {args.cache_hit_rate:g}; prices: {prices or 'none given (cost left out)'}")
    for rec in records:
        print(f"record {rec['source']}: {rec.get('machine')}" + (f" -- {rec['note'][:160]}..." if rec.get("note") else ""))
    return 0


def _build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="course-lib", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--online", action="store_true",
                   help="allow downloads from the model hub (default: offline; hub ids must be cached)")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("check", help="check the environment ([OK]/[FAIL])")
    c.add_argument("--data", default=None, help="data directory to check (default $COURSE_DATA_DIR)")
    c.add_argument("--lock", default=None, help="the lock file to compare with (default: requirements.lock of this checkout)")
    c.set_defaults(func=_cmd_check)

    e = sub.add_parser("eval", help="evaluate first stage, cross-encoder and fused pipeline")
    e.add_argument("--data", required=True, help="a BEIR-layout dataset directory, or a name under --data-dir")
    e.add_argument("--data-dir", default=None, help="folder of datasets (default $COURSE_DATA_DIR)")
    e.add_argument("--split", default="test")
    e.add_argument("--first-stage", choices=["dense", "bm25", "hybrid"], default="dense")
    e.add_argument("--k", type=int, default=100, help="candidates reranked per query")
    e.add_argument("--reranker", default=None, help="model name/path, or 'none' (default: the course reranker)")
    e.add_argument("--fusion-weight", type=float, default=None, help="cross-encoder weight in the fusion")
    e.add_argument("--max-queries", type=int, default=None, help="the first N queries in id order")
    e.add_argument("--sample", type=int, default=None, help="a fixed random subset of N queries (see --seed)")
    e.add_argument("--seed", type=int, default=0, help="seed of --sample")
    e.add_argument("--max-length", type=int, default=None, help="pair token limit (default: the model's)")
    e.add_argument("--no-cache", action="store_true", help="rescore every pair instead of using the score cache")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_cmd_eval)

    b = sub.add_parser("bench", help="speed levers vs the naive loop: speed-up, latency, NDCG@10, top-10 agreement")
    b.add_argument("--data", default="scifact", help="'course' (the course corpus's evaluation half) or a BEIR dataset")
    b.add_argument("--data-dir", default=None, help="folder of datasets (default: $COURSE_DATA_DIR)")
    b.add_argument("--split", default="test")
    b.add_argument("--k", type=int, default=30, help="first-stage candidates per query")
    b.add_argument("--max-queries", type=int, default=50, help="the first N queries in id order (0 = all)")
    b.add_argument("--variants", nargs="*", default=None, help="levers to run (default: all this checkout has)")
    b.add_argument("--repeat", type=int, default=1,
                   help="replay the query list this many times (a stream where queries come back: what a pair cache is for)")
    b.add_argument("--run", default=None,
                   help="a TREC run file to rerank instead of searching here (e.g. a dense run computed on another machine)")
    b.add_argument("--host", action="store_true",
                   help="also measure the host path alone (tokenising, padding: everything but the forward pass)")
    b.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress on stderr)")
    b.set_defaults(func=_cmd_bench)

    v = sub.add_parser("serve", help="run the reranking service over HTTP (FastAPI + uvicorn)")
    from course_lib.service.config import ServiceConfig

    ServiceConfig.add_arguments(v)  # every setting of the service, with its default, from one place
    v.add_argument("--ray", action="store_true", help="run on Ray Serve (local Ray, this machine's cores)")
    v.set_defaults(func=_cmd_serve)

    lt = sub.add_parser("loadtest", help="bounded load test of a service on this machine (loopback only)")
    lt.add_argument("--url", default="http://127.0.0.1:8000")
    lt.add_argument("--concurrency", type=int, default=16)
    lt.add_argument("--requests", type=int, default=200)
    lt.add_argument("--dataset", default="course", help="'course' or a BEIR dataset under --data-dir (e.g. scifact)")
    lt.add_argument("--data-dir", default=None)
    lt.add_argument("--k", type=int, default=30, help="first-stage candidates per request")
    lt.add_argument("--deadline-ms", type=float, default=None)
    lt.add_argument("--repeat-fraction", type=float, default=0.0, help="share of requests repeating an earlier one")
    lt.add_argument("--max-seconds", type=float, default=300.0, help="stop sending after this long")
    lt.add_argument("--api-key", default=None)
    lt.add_argument("--offline-baseline", action="store_true", help="also score the same pairs in-process, without HTTP")
    lt.add_argument("--latencies", action="store_true", help="include every request's latency in the output")
    lt.add_argument("--json", action="store_true")
    lt.set_defaults(func=_cmd_loadtest)

    co = sub.add_parser("cost", help="machine-hours and cost per 1,000 queries from bench/loadtest records")
    co.add_argument("--record", action="append", default=None,
                    help="a course-lib bench --json or loadtest --json record (repeatable; default: the shipped CPU and GPU records)")
    co.add_argument("--core-hour", type=float, default=None, help="your price per CPU core-hour")
    co.add_argument("--gpu-hour", type=float, default=None, help="your price per GPU-hour (the machine around it included)")
    co.add_argument("--currency", default="", help="a symbol to print before prices, e.g. $")
    co.add_argument("--k", type=int, default=None, help="candidates reranked per query (default: each record's own)")
    co.add_argument("--cache-hit-rate", type=float, default=0.0, help="share of pairs found in the pair cache (0..1)")
    co.add_argument("--only", nargs="*", default=None, help="keep settings whose name contains one of these")
    co.add_argument("--json", action="store_true")
    co.set_defaults(func=_cmd_cost)

    cv = sub.add_parser("convert", help="your own CSV/TSV/JSONL of (query, passage, optional label) -> a BEIR-layout dataset")
    cv.add_argument("source", help="a .csv, .tsv or .jsonl file with columns query, passage[, label, query_id, doc_id, title]")
    cv.add_argument("output", help="folder to write corpus.jsonl, queries.jsonl and qrels/<split>.tsv into")
    cv.add_argument("--split", default="test")
    cv.add_argument("--overwrite", action="store_true")
    cv.set_defaults(func=_cmd_convert)

    g = sub.add_parser("grade", help="grade an exercise notebook against its solution")
    g.add_argument("notebook", nargs="?", help="an exercise notebook (with --all: the exercises folder, default exercises)")
    g.add_argument("--all", action="store_true", help="one line per exercise: passed / failed / not started, score")
    g.add_argument("--timeout", type=int, default=600)
    g.set_defaults(func=_cmd_grade)
    return p


def main(argv=None) -> int:
    args = _build_parser().parse_args(argv)
    from course_lib.env import configure

    configure(offline=not args.online)
    from course_lib.data import DataError
    from course_lib.models import ModelLoadError

    try:
        return args.func(args)
    except (DataError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
