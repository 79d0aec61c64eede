"""The instructor's one entry point: how the shipped models, caches and records were made.

    python -m course_lib.instructor --help
    python -m course_lib.instructor COMMAND [ARGS ...]      (COMMAND --help for its own arguments)

Learners need none of this (``course-lib`` is theirs).  The commands in the package:

=====================  ====================================================================================
``train-reranker``     train the course reranker (:mod:`course_lib.instructor.recipe`), then calibrate it
``calibrate``          fit calibration and the fusion weight on held-out train queries (:mod:`~course_lib.instructor.selection`)
``distill``            the distilled speed tier: ``prepare`` groups, ``train`` students (:mod:`~course_lib.instructor.distill`)
``tune-onnx``          compare the ONNX int8 recipes on tuning claims (:mod:`~course_lib.instructor.tuning`)
=====================  ====================================================================================

and the checkout's instructor scripts (``scripts/``, run from a clone): :data:`SCRIPTS`.
No learner module imports this package (``tests/test_import_layers.py``).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys

from course_lib import settings

#: Commands that run a script of the checkout: name -> (file under scripts/, what it does).
SCRIPTS = {
    "choose-levels": ("choose_levels.py", "measure every speed lever on tuning queries; pick OptimizedReranker's levels"),
    "fusion-weight": ("select_fusion_weight.py", "choose the reranker and the pipeline's fusion weight on tuning sets"),
    "report": ("reranker_report.py", "the course reranker's figures on every collection, before and after a retrain"),
    "ship-reranker": ("ship_reranker.py", "copy a trained, calibrated reranker into the package"),
    "train-medical": ("train_medical_reranker.py", "fine-tune the reranker on MedQuAD train questions (notebook 04)"),
    "precompute-domains": ("precompute_domains.py", "write the shipped caches notebook 04 reads"),
    "refresh-eval-cache": ("refresh_eval_cache.py", "copy evaluation caches into eval_cache/"),
    "bench-rerank": ("bench_rerank.py", "throughput of the reranker at several max lengths and precisions"),
    "corpus": ("corpus_source.py", "regenerate the course corpus (course_lib/corpus/*.jsonl)"),
}


def train_reranker_main(argv=None) -> int:
    """``train-reranker``: train, then calibrate (unless ``--skip-calibration``); prints both reports."""
    from course_lib.instructor.recipe import RecipeConfig, train_reranker
    from course_lib.instructor.selection import calibrate_and_report

    t = argparse.ArgumentParser(prog="python -m course_lib.instructor train-reranker",
                                description="train the course reranker from a BEIR-layout dataset (the shipped recipe)")
    t.add_argument("--data", required=True, help="folder of datasets (or the dataset itself)")
    t.add_argument("--dataset", default="scifact")
    t.add_argument("--output", required=True)
    t.add_argument("--epochs", type=int, default=1)
    t.add_argument("--max-length", type=int, default=192)
    t.add_argument("--pseudo", type=int, default=1000, help="title->abstract pseudo-query groups")
    t.add_argument("--course-repeats", type=int, default=3,
                   help="groups per answer from the course corpus's train-half queries (0 = none)")
    t.add_argument("--seed", type=int, default=13)
    t.add_argument("--neg-miner", choices=["dense", "reranker"], default="dense",
                   help="hard negatives from the bi-encoder, or half from the --init-from model's own ranking")
    t.add_argument("--label-sample", type=int, default=None, help="cap on the dataset's labelled groups")
    t.add_argument("--medquad-groups", type=int, default=0,
                   help="MedQuAD train questions as extra labelled groups (medquad beside --dataset)")
    t.add_argument("--pseudo-corpora", nargs="*", default=[],
                   help="other corpora (beside --dataset) for title->text pseudo-query groups")
    t.add_argument("--n-pseudo-extra", type=int, default=300, help="pseudo-query groups per --pseudo-corpora entry")
    t.add_argument("--pseudo-symmetric", action="store_true",
                   help="pseudo-query groups show every document as its body without its title (positive and negatives alike)")
    t.add_argument("--kl-weight", type=float, default=0.5, help="weight of KL to the bi-encoder's group distribution")
    t.add_argument("--lr", type=float, default=2e-5)
    t.add_argument("--device", default=None)
    t.add_argument("--max-groups", type=int, default=None, help="cap on training groups (smoke tests)")
    t.add_argument("--init-from", default=None, help="continue from an earlier run's output (a second stage)")
    t.add_argument("--skip-calibration", action="store_true")
    args = t.parse_args(argv)
    cfg = RecipeConfig(epochs=args.epochs, max_length=args.max_length, n_pseudo=args.pseudo, seed=args.seed,
                       course_repeats=args.course_repeats, neg_miner=args.neg_miner, label_sample=args.label_sample,
                       medquad_groups=args.medquad_groups, pseudo_corpora=tuple(args.pseudo_corpora),
                       n_pseudo_extra=args.n_pseudo_extra, kl_weight=args.kl_weight, lr=args.lr,
                       pseudo_symmetric=args.pseudo_symmetric)
    info = train_reranker(args.data, args.output, args.dataset, cfg, device=args.device, max_groups=args.max_groups,
                          init_from=args.init_from)
    print(json.dumps({k: v for k, v in info.items() if k != "dev_query_ids"}, indent=1))
    if not args.skip_calibration:
        rep = calibrate_and_report(args.output, args.data, args.dataset)
        print(json.dumps(rep, indent=1))
    return 0



def calibrate_main(argv=None) -> int:
    """``calibrate MODEL --data DIR``: fit calibration and the fusion weight; prints the report."""
    from course_lib.instructor.selection import calibrate_and_report

    k = argparse.ArgumentParser(prog="python -m course_lib.instructor calibrate",
                                description="fit calibration and pick the fusion weight on held-out train queries")
    k.add_argument("model")
    k.add_argument("--data", required=True)
    k.add_argument("--dataset", default="scifact")
    k.add_argument("--depth", type=int, default=30)
    k.add_argument("--max-length", type=int, default=None)
    args = k.parse_args(argv)
    rep = calibrate_and_report(args.model, args.data, args.dataset, depth=args.depth, max_length=args.max_length)
    print(json.dumps(rep, indent=1))
    return 0


def _distill(argv):
    from course_lib.instructor.distill import main

    return main(argv) or 0


def _tune_onnx(argv):
    from course_lib.instructor.tuning import main

    return main(argv)


#: Commands in the package: name -> (function of argv, what it does).
COMMANDS = {
    "train-reranker": (train_reranker_main, "train the course reranker (the shipped recipe), then calibrate it"),
    "calibrate": (calibrate_main, "fit calibration and the fusion weight on held-out train queries"),
    "distill": (_distill, "the distilled speed tier: prepare groups, train students"),
    "tune-onnx": (_tune_onnx, "compare ONNX int8 recipes on tuning claims"),
}


def run_script(name: str, argv) -> int:
    """Run ``scripts/<file>`` of the checkout as ``__main__`` with ``argv``."""
    path = settings.CHECKOUT_DIR / "scripts" / SCRIPTS[name][0]
    if not path.is_file():
        print(f"error: {name} runs {path}, which is only in a clone of the course repository", file=sys.stderr)
        return 2
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved
    return 0


def main(argv=None) -> int:
    """Dispatch ``python -m course_lib.instructor COMMAND ...``; ``--help`` lists the commands."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m course_lib.instructor COMMAND [ARGS ...]\n")
        for name, (_, text) in COMMANDS.items():
            print(f"  {name:20s} {text}")
        for name, (file, text) in SCRIPTS.items():
            print(f"  {name:20s} {text} (scripts/{file})")
        return 0
    name, rest = argv[0], argv[1:]
    from course_lib.env import configure

    configure(offline=True)
    if name in COMMANDS:
        return int(COMMANDS[name][0](rest) or 0)
    if name in SCRIPTS:
        return run_script(name, rest)
    print(f"error: unknown command {name!r}; see python -m course_lib.instructor --help", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
