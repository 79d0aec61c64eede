"""What reranking costs: machine-hours and money per 1,000 queries, from measured speed records.

A record is what ``course-lib bench --json`` writes (one row per variant: ``ms_per_query`` at ``k``
candidates, on the ``machine`` it names) or what ``course-lib loadtest --json`` prints (``throughput_rps`` of a
service, with ``pairs_per_request``).  :func:`cost_rows` turns each row into

* **seconds of the whole machine per query** at the K you ask for — the record's time per query scaled by
  K / the record's K (reranking cost grows with the pairs scored; a row measured at its own K is not scaled),
  times (1 - ``cache_hit_rate``) (a cached pair costs a lookup, not a forward pass; a row that measured a
  cache of its own, such as ``pair cache``, is not discounted again);
* **machine-hours per 1,000 queries**, and on a CPU **core-hours** (machine-hours x cores): what a bill counts;
* **cost per 1,000 queries** = machine-hours x the hourly price *you* set: ``core_hour`` x cores for a CPU
  machine, ``gpu_hour`` for a GPU machine (its host cores included).  No price is built in: prices differ by
  provider, region and commitment, and change.

What the numbers assume: the machine does nothing else (a bench times one query after another on an idle
machine; a loadtest record's throughput includes the HTTP server's work and, on one machine, its load
generator's), and a query's cost is its reranking only (the first stage is a few milliseconds beside it: notebook
06).  The levers' effects are read from the same record: the distilled speed tier and adaptive K are rows of
their own; the cache enters as the hit rate you expect (``course-lib bench --repeat 2`` measures one).
A cache saves only when traffic repeats: a ``pair cache`` row measured on a stream where no query repeats
costs *more* than the naive loop (a lookup on every pair, no hit).  A GPU record that times one query at a
time (30 pairs per forward pass) leaves most of the chip idle; a service that merges many queries into one
pass should cost less per query — measure it with ``course-lib loadtest --json`` against ``course-lib serve``
on that machine, a record that prices the whole service, HTTP included.

    course-lib cost --core-hour 0.05 --gpu-hour 4.0 [--k 30] [--cache-hit-rate 0.3] [--record PATH ...]

>>> rec = {"k": 30, "machine": "x86_64 2 cores, CPU, torch 2.13.0+cpu, 2 threads",
...        "naive": {"name": "naive", "ms_per_query": 900.0, "ndcg@10": 0.72}, "variants": []}
>>> row = cost_rows([rec], core_hour=0.05)[0]
>>> round(row["machine_hours_per_1k"], 6), round(row["core_hours_per_1k"], 6), round(row["cost_per_1k"], 6)
(0.25, 0.5, 0.025)
>>> round(cost_rows([rec], core_hour=0.05, k=60, cache_hit_rate=0.5)[0]["machine_hours_per_1k"], 6)
0.25
"""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["DEFAULT_RECORDS", "cost_rows", "format_table", "hardware", "load_record"]

#: The shipped records ``course-lib cost`` reads when given none (``eval_cache/bench/``): the course's 2-core
#: CPU machine, and a borrowed NVIDIA H200 (see that record's ``note``).
DEFAULT_RECORDS = ("bench/scifact-test-k30-q50.json", "bench/scifact-test-k30-q50-h200.json")


def hardware(machine: str) -> dict:
    """``{"kind": "cpu"|"gpu", "cores": n, "name": ...}`` from a record's ``machine`` line (``bench.machine()``).

    >>> hardware("x86_64 16 cores, NVIDIA H200, torch 2.11.0+cu130, 16 threads")
    {'kind': 'gpu', 'cores': 16, 'name': 'NVIDIA H200'}
    >>> hardware("x86_64 2 cores, CPU, torch 2.13.0+cpu, 2 threads")["kind"]
    'cpu'
    """
    m = re.search(r"(\d+) cores, ([^,]+)", machine or "")
    if m is None:
        raise ValueError(f"cannot read cores and device from machine {machine!r}")
    cores, device = int(m.group(1)), m.group(2).strip()
    return {"kind": "cpu" if device.upper() == "CPU" else "gpu", "cores": cores, "name": device}


def load_record(path_or_name) -> dict:
    """A speed record: a path, or a name under the shipped caches (``bench/…json``)."""
    from course_lib.caches import find_cached

    p = Path(path_or_name)
    if not p.is_file():
        found = find_cached(str(path_or_name))
        if found is None:
            raise FileNotFoundError(f"no speed record at {path_or_name!r} (a path, or a name under eval_cache/)")
        p = found
    rec = json.loads(p.read_text())
    rec.setdefault("source", str(path_or_name))
    return rec


def _rows_of(record: dict) -> list[dict]:
    """``[{name, k, seconds_per_query, ndcg}]`` of a bench record (every variant) or a loadtest summary."""
    if "throughput_rps" in record:  # a loadtest summary: the service's whole-machine rate
        if not record.get("pairs_per_request"):
            raise ValueError("a loadtest record needs pairs_per_request (course-lib loadtest --json writes it)")
        return [{"name": f"service, {record.get('concurrency')} clients", "k": record["pairs_per_request"],
                 "seconds_per_query": 1.0 / record["throughput_rps"], "ndcg": None}]
    k = record["k"]
    return [{"name": v["name"], "k": k, "seconds_per_query": v["ms_per_query"] / 1000.0, "ndcg": v.get("ndcg@10")}
            for v in [record["naive"], *record.get("variants", [])]]


def cost_rows(records: list[dict], *, core_hour: float | None = None, gpu_hour: float | None = None,
              k: int | None = None, cache_hit_rate: float = 0.0, only: list[str] | None = None) -> list[dict]:
    """One row per measured setting: machine-hours, core-hours (CPU) and cost per 1,000 queries.

    Args:
        records: bench records or loadtest summaries (:func:`load_record`); each names its ``machine``.
        core_hour, gpu_hour: your prices per CPU core-hour and per GPU-hour (None: cost left out).
        k: candidates reranked per query (None: each record's own).
        cache_hit_rate: the share of pairs your traffic finds in the pair cache (0..1).
        only: keep rows whose name contains one of these (case-insensitive).
    """
    if not 0.0 <= cache_hit_rate < 1.0:
        raise ValueError(f"cache_hit_rate must lie in [0, 1), got {cache_hit_rate}")
    if k is not None and k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    out = []
    for rec in records:
        hw = hardware(rec.get("machine", ""))
        for r in _rows_of(rec):
            if only and not any(o.lower() in r["name"].lower() for o in only):
                continue
            at_k = k or r["k"]
            own_cache = "cache" in r["name"].lower()  # measured with its own cache: not discounted again
            seconds = r["seconds_per_query"] * at_k / r["k"] * (1.0 if own_cache else 1.0 - cache_hit_rate)
            hours = seconds * 1000 / 3600
            price = (core_hour * hw["cores"]) if hw["kind"] == "cpu" and core_hour is not None else \
                gpu_hour if hw["kind"] == "gpu" else None
            out.append({"setting": r["name"], "hardware": f"{hw['name']} ({hw['cores']} cores)", "kind": hw["kind"],
                        "k": at_k, "measured_k": r["k"], "cache_hit_rate": cache_hit_rate,
                        "ms_per_query": round(seconds * 1000, 1), "machine_hours_per_1k": hours,
                        "core_hours_per_1k": hours * hw["cores"] if hw["kind"] == "cpu" else None,
                        "cost_per_1k": None if price is None else hours * price,
                        "ndcg@10": r["ndcg"], "source": rec.get("source")})
    return out


def format_table(rows: list[dict], currency: str = "") -> str:
    """The rows as an aligned text table (what ``course-lib cost`` prints)."""
    head = f"{'setting':<48} {'hardware':<22} {'K':>4} {'ms/query':>9} {'machine-h':>10} {'core-h':>8} {'cost':>9} {'NDCG@10':>8}"
    lines = [head, "-" * len(head)]
    for r in rows:
        core = "" if r["core_hours_per_1k"] is None else f"{r['core_hours_per_1k']:.4f}"
        cost = "" if r["cost_per_1k"] is None else f"{currency}{r['cost_per_1k']:.4f}"
        nd = "" if r["ndcg@10"] is None else f"{r['ndcg@10']:.4f}"
        lines.append(f"{r['setting'][:48]:<48} {r['hardware'][:22]:<22} {r['k']:>4} {r['ms_per_query']:>9.1f} "
                     f"{r['machine_hours_per_1k']:>10.4f} {core:>8} {cost:>9} {nd:>8}")
    lines.append("(NDCG@10 as measured at each record's own K; times scaled linearly from it)")
    return "\n".join(lines)
