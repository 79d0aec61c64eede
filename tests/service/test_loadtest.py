"""The bounded load test (course_lib.service.loadtest): loopback only, a real workload, a summary."""
import asyncio

import pytest

from course_lib.service.loadtest import check_loopback, run_load, workload
from course_lib.service.server import ServerProcess


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://192.168.0.1", "http://example.org", "http://8.8.8.8"])
def test_only_loopback_targets(url):
    with pytest.raises(ValueError, match="loopback"):
        check_loopback(url)
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(run_load(url, [], concurrency=1))


def test_workload_repeats_the_requested_share():
    reqs = workload(20, "course", k=5, repeat_fraction=0.25)
    assert len(reqs) == 20 and all(len(r["candidates"]) == 5 for r in reqs)
    keys = [(r["query"], tuple(c["id"] for c in r["candidates"])) for r in reqs]
    assert len(keys) - len(set(keys)) >= 5
    with pytest.raises(ValueError):
        workload(5, repeat_fraction=1.5)


@pytest.mark.slow
def test_a_short_load_test_reports_everything_and_repeats_hit_the_cache():
    reqs = workload(24, "course", k=8, repeat_fraction=0.5)
    with ServerProcess() as srv:
        res = asyncio.run(run_load(srv.url, reqs, concurrency=4, max_seconds=120))
        # one more candidate each: not answerable from the cache alone, so the 1 ms deadline applies
        tight = asyncio.run(run_load(srv.url, workload(8, "course", k=9), concurrency=8, deadline_ms=1, max_seconds=60))
    for key in ("requests", "concurrency", "throughput_rps", "pairs_per_s", "p50_ms", "p95_ms", "p99_ms", "errors",
                "degraded", "within_deadline", "cache_hit_rate"):
        assert key in res
    assert res["requests"] == 24 and res["errors"] == 0 and res["cache_hit_rate"] >= 0.3
    assert tight["errors"] == 0 and tight["degraded"] == tight["requests"] == 8
