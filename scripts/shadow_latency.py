"""What a shadow costs the primary: ``course-lib serve`` without and with ``--shadow``, the same bounded load
test against each, in one run, alternating (off, on, off, on, ...) so drift on the machine hits both alike.

    python scripts/shadow_latency.py [--candidate PATH] [--rates 0.1,1.0] [--requests 60] [--k 20] [--rounds 2]

The candidate defaults to a second copy of the course reranker (a model as large as the primary: the shadow's
cost is then its share of the primary's own work).  The workload is MedQuAD's LiveQA test questions with their
dense top ``k`` (``course_lib.service.loadtest.workload``), sent by ``--concurrency`` clients; every server is on
loopback and every run bounded in requests and seconds.  Prints one row per run — the primary's p50/p95 latency
and throughput, and the shadow's compared/dropped counts from ``/metrics`` — then the medians per setting; with
``--json PATH`` also writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--candidate", default=None, help="the shadow model (default: the course reranker again)")
    ap.add_argument("--rates", default="0.1,1.0", help="shadow rates to compare with no shadow")
    ap.add_argument("--dataset", default="medquad")
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    import httpx

    from course_lib.bench import machine
    from course_lib.models import course_reranker_path
    from course_lib.service.loadtest import run_load, workload
    from course_lib.service.server import ServerProcess

    candidate = args.candidate or str(course_reranker_path())
    rates = [float(r) for r in args.rates.split(",")]
    requests = workload(args.requests, dataset=args.dataset, k=args.k)
    settings = [("no shadow", [])] + [(f"shadow {r:g}", ["--shadow", candidate, "--shadow-rate", str(r)]) for r in rates]
    rows = []
    for rnd in range(args.rounds):
        for name, extra in settings:
            with ServerProcess(["--cache-size", "0", *extra]) as srv:
                res = asyncio.run(run_load(srv.url, requests, concurrency=args.concurrency,
                                           max_seconds=args.max_seconds))
                time.sleep(0.5)
                metrics = httpx.get(srv.url + "/metrics", timeout=10, trust_env=False).text
            shadow = {o: int(sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                                 if line.startswith("rerank_shadow_requests_total{") and f'outcome="{o}"' in line))
                      for o in ("compared", "dropped")}
            row = {"round": rnd + 1, "setting": name, "p50_ms": res["p50_ms"], "p95_ms": res["p95_ms"],
                   "throughput_rps": res["throughput_rps"], "ok": res["ok"], "requests": res["requests"], **shadow}
            rows.append(row)
            print(f"round {row['round']}  {name:<12} p50 {row['p50_ms']:8.1f} ms  p95 {row['p95_ms']:8.1f} ms  "
                  f"{row['throughput_rps']:5.2f} req/s  ok {row['ok']}/{row['requests']}  "
                  f"shadow compared {shadow['compared']} dropped {shadow['dropped']}", flush=True)
    summary = {}
    for name, _ in settings:
        mine = [r for r in rows if r["setting"] == name]
        summary[name] = {key: round(statistics.median(r[key] for r in mine), 2 if key == "throughput_rps" else 1)
                         for key in ("p50_ms", "p95_ms", "throughput_rps", "compared", "dropped")}
    print(f"\nmedians over {args.rounds} round(s); {len(requests)} requests of {args.k} candidates "
          f"({args.dataset}), {args.concurrency} clients; {machine()}")
    base = summary["no shadow"]
    for name, s in summary.items():
        print(f"  {name:<12} p50 {s['p50_ms']:8.1f} ms ({s['p50_ms'] / base['p50_ms']:.2f}x)  "
              f"p95 {s['p95_ms']:8.1f} ms ({s['p95_ms'] / base['p95_ms']:.2f}x)  {s['throughput_rps']:5.2f} req/s  "
              f"compared {s['compared']:g} dropped {s['dropped']:g}")
    out = {"command": "python scripts/shadow_latency.py " + " ".join(sys.argv[1:] if argv is None else argv), "machine": machine(),
           "candidate": candidate, "requests": len(requests), "k": args.k, "concurrency": args.concurrency,
           "rows": rows, "medians": summary}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return out


if __name__ == "__main__":
    main()
