"""Benchmark the course reranker's throughput on this machine (prints figures; nothing is asserted).

    python scripts/bench_rerank.py [--pairs 64] [--lengths 128 192 256]

Scores the same synthetic (query, long passage) pairs at each max length in fp32, with bf16
autocast (where the CPU supports it) and with dynamic int8 quantisation, and prints pairs per
second and the largest logit difference from fp32.
"""
import argparse
import time

from course_lib.env import configure

configure(offline=True)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from course_lib.models import load_reranker  # noqa: E402


def run(model, pairs, batch_size, ctx):
    with torch.inference_mode(), ctx():
        model.predict(pairs[:batch_size], batch_size=batch_size, activation_fn=torch.nn.Identity())  # warm-up
        t = time.perf_counter()
        out = model.predict(pairs, batch_size=batch_size, activation_fn=torch.nn.Identity())
        return len(pairs) / (time.perf_counter() - t), np.asarray(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128, 192, 256])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    words = "cell protein gene expression tumour patients trial dose response signal pathway receptor".split()
    pairs = [("does the receptor pathway change the response", " ".join(rng.choice(words, 400))) for _ in range(args.pairs)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.pairs} pairs, batch {args.batch_size}")
    for L in args.lengths:
        ce = load_reranker(max_length=L)
        base_rate, base = run(ce, pairs, args.batch_size, torch.no_grad)
        print(f"max_length {L:4d}  fp32        {base_rate:7.1f} pairs/s")
        bf16_ok = torch.backends.mkldnn.is_available() and getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        if bf16_ok:
            rate, out = run(ce, pairs, args.batch_size, lambda: torch.autocast("cpu", dtype=torch.bfloat16))
            print(f"max_length {L:4d}  bf16 autocast {rate:5.1f} pairs/s  max |logit diff| {np.abs(out - base).max():.3f}")
        model = ce[0].auto_model
        q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        ce[0].auto_model = q
        rate, out = run(ce, pairs, args.batch_size, torch.no_grad)
        ce[0].auto_model = model
        print(f"max_length {L:4d}  int8 dynamic {rate:6.1f} pairs/s  max |logit diff| {np.abs(out - base).max():.3f}")


if __name__ == "__main__":
    main()
