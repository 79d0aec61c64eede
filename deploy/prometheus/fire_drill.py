"""A fire drill: a real Prometheus scrapes a real `course-lib serve` while a bounded load test breaks the latency
objective, and the alert fires.  Loopback only; it stops by itself.

    python deploy/prometheus/fire_drill.py [--objective-s 1.0] [--seconds 90]

The rules are `rules.yml` with the objective, the rate windows and the `for:` durations scaled down so the drill
takes a minute or two instead of the production rules' five-minute windows.  Prometheus comes from PATH, else from
Debian's `prometheus` package (`apt-get download`, unpacked into a temporary folder; nothing is installed).
"""
import argparse
import asyncio
import json
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def prometheus_binary(tmp: Path) -> str:
    found = shutil.which("prometheus")
    if found:
        return found
    subprocess.run(["apt-get", "download", "-q", "prometheus"], cwd=tmp, check=True, capture_output=True)
    deb = next(tmp.glob("prometheus_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp / "x")], check=True)
    return str(tmp / "x" / "usr" / "bin" / "prometheus")


def drill_rules(objective_s: float) -> str:
    rules = (HERE / "rules.yml").read_text()
    rules = rules.replace("[5m]", "[30s]").replace("[15m]", "[1m]").replace("interval: 30s", "interval: 2s")
    rules = re.sub(r"for: \d+m", "for: 10s", rules)
    rules = rules.replace("rerank:latency_seconds:p95_5m > 2.5", f"rerank:latency_seconds:p95_5m > {objective_s}")
    return rules.replace("(objective: 2.5 s)", f"(objective: {objective_s:g} s)")


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objective-s", type=float, default=1.0, help="the p95 objective the load test should break")
    ap.add_argument("--seconds", type=float, default=90.0, help="stop after this long")
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()

    from course_lib.service.loadtest import run_load, workload
    from course_lib.service.server import ServerProcess, free_port

    with tempfile.TemporaryDirectory() as tmp_name, ServerProcess(env={"COURSE_API_KEY": ""}) as srv:
        tmp = Path(tmp_name)
        (tmp / "rules.yml").write_text(drill_rules(args.objective_s))
        (tmp / "prometheus.yml").write_text(
            "global: {scrape_interval: 2s, evaluation_interval: 2s}\nrule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: reranker\n    static_configs: [{{targets: ['127.0.0.1:{srv.port}']}}]\n")
        port = free_port()
        prom = subprocess.Popen([prometheus_binary(tmp), f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}/api/v1"
        try:
            t0 = time.monotonic()
            stop = threading.Event()
            result = {}

            def load():
                reqs = workload(400, dataset="course", k=20, repeat_fraction=0.0)
                result["load"] = asyncio.run(run_load(srv.url, reqs, concurrency=args.concurrency,
                                                      max_seconds=args.seconds * 0.7))
                stop.set()

            threading.Thread(target=load, daemon=True).start()
            fired = None
            while time.monotonic() - t0 < args.seconds and fired is None:
                time.sleep(2)
                try:
                    alerts = get_json(api + "/alerts")["data"]["alerts"]
                    p95 = get_json(api + "/query?query=rerank:latency_seconds:p95_5m")["data"]["result"]
                except OSError:
                    continue
                now = f"{time.monotonic() - t0:5.0f} s"
                states = {a["labels"]["alertname"]: a["state"] for a in alerts}
                print(now, "| p95 (30 s window):", f"{float(p95[0]['value'][1]):.2f} s" if p95 else "-", "| alerts:", states or "none")
                fired = next((a for a in alerts if a["labels"]["alertname"] == "RerankerLatencyP95AboveObjective"
                              and a["state"] == "firing"), None)
            stop.wait(timeout=args.seconds)
            if "load" in result:
                lo = result["load"]
                print(f"load test: {lo['ok']} answered, p50 {lo['p50_ms']:.0f} ms, p95 {lo['p95_ms']:.0f} ms "
                      f"(objective {args.objective_s * 1000:.0f} ms)")
            if fired:
                print("FIRING:", fired["labels"]["alertname"], "-", fired["annotations"]["summary"])
            else:
                print("the alert did not fire within", args.seconds, "s")
            return 0 if fired else 1
        finally:
            prom.terminate()
            prom.wait(timeout=30)


if __name__ == "__main__":
    raise SystemExit(main())
