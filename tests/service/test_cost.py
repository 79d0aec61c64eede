"""Cost per 1,000 queries (course_lib.service.cost) from speed records, and ``course-lib cost``."""
import json
import subprocess
import sys

import pytest

from course_lib.service.cost import DEFAULT_RECORDS, cost_rows, format_table, hardware, load_record

CPU = "x86_64 2 cores, CPU, torch 2.13.0+cpu, 2 threads"
GPU = "x86_64 16 cores, NVIDIA H200, torch 2.11.0+cu130, 16 threads"


def bench_record(machine=CPU, k=30, ms=600.0, variants=()):
    return {"k": k, "machine": machine, "source": "test",
            "naive": {"name": "naive", "ms_per_query": ms, "ndcg@10": 0.7},
            "variants": [{"name": n, "ms_per_query": m, "ndcg@10": 0.69} for n, m in variants]}


def test_machine_hours_core_hours_and_cost_follow_the_record():
    rows = cost_rows([bench_record(variants=[("distilled", 200.0)])], core_hour=0.10)
    naive, distilled = rows
    assert naive["machine_hours_per_1k"] == pytest.approx(600.0 / 3600)  # 0.6 s x 1000 queries
    assert naive["core_hours_per_1k"] == pytest.approx(2 * 600.0 / 3600)
    assert naive["cost_per_1k"] == pytest.approx(0.10 * 2 * 600.0 / 3600, abs=1e-4)
    assert distilled["cost_per_1k"] == pytest.approx(naive["cost_per_1k"] / 3, abs=1e-4)  # 3x faster, 3x cheaper


def test_k_and_the_cache_scale_the_time_and_a_measured_cache_is_not_discounted_twice():
    rec = bench_record(variants=[("pair cache", 300.0)])
    base = cost_rows([rec])
    scaled = cost_rows([rec], k=90, cache_hit_rate=0.5)
    assert scaled[0]["ms_per_query"] == pytest.approx(base[0]["ms_per_query"] * 3 * 0.5)
    assert scaled[1]["ms_per_query"] == pytest.approx(base[1]["ms_per_query"] * 3)  # its own cache already counted
    assert scaled[0]["measured_k"] == 30 and scaled[0]["k"] == 90


def test_a_gpu_record_is_priced_per_gpu_hour_and_a_missing_price_leaves_cost_out():
    row = cost_rows([bench_record(GPU, ms=18.0)], core_hour=0.05, gpu_hour=3.6)[0]
    assert row["kind"] == "gpu" and row["core_hours_per_1k"] is None
    assert row["cost_per_1k"] == pytest.approx(0.018)  # 18 s per 1,000 queries at 3.6 an hour
    assert cost_rows([bench_record(GPU)], core_hour=0.05)[0]["cost_per_1k"] is None


def test_a_loadtest_record_costs_its_whole_machine_throughput():
    summary = {"throughput_rps": 2.0, "pairs_per_request": 30, "concurrency": 8, "machine": CPU}
    row = cost_rows([summary], core_hour=1.0)[0]
    assert row["ms_per_query"] == 500.0 and row["setting"] == "service, 8 clients" and row["ndcg@10"] is None
    with pytest.raises(ValueError, match="pairs_per_request"):
        cost_rows([{"throughput_rps": 2.0, "machine": CPU}])


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="cache_hit_rate"):
        cost_rows([bench_record()], cache_hit_rate=1.0)
    with pytest.raises(ValueError, match="cores and device"):
        hardware("a laptop")
    with pytest.raises(FileNotFoundError, match="no speed record"):
        load_record("bench/none-such.json")


def test_the_shipped_records_give_a_table_the_speed_tier_makes_cheaper():
    rows = cost_rows([load_record(r) for r in DEFAULT_RECORDS], core_hour=0.05, gpu_hour=4.0)
    cpu = {r["setting"]: r for r in rows if r["kind"] == "cpu"}
    assert cpu["distilled"]["cost_per_1k"] < cpu["naive"]["cost_per_1k"]
    assert {r["kind"] for r in rows} == {"cpu", "gpu"}
    table = format_table(rows, "$")
    assert table.splitlines()[0].startswith("setting") and "$" in table and len(table.splitlines()) == len(rows) + 3


def test_course_lib_cost_prints_the_table_and_json():
    out = subprocess.run([sys.executable, "-m", "course_lib.cli", "cost", "--core-hour", "0.05", "--only", "naive",
                          "--k", "60"], capture_output=True, text=True, check=True).stdout
    assert "naive" in out and "K = 60" in out and "0.05/core-hour" in out
    rows = json.loads(subprocess.run([sys.executable, "-m", "course_lib.cli", "cost", "--json", "--only", "naive"],
                                     capture_output=True, text=True, check=True).stdout)
    assert [r["setting"] for r in rows] == ["naive", "naive"] and rows[0]["cost_per_1k"] is None
    bad = subprocess.run([sys.executable, "-m", "course_lib.cli", "cost", "--record", "nowhere.json"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "no speed record" in bad.stderr
