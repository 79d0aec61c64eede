"""deploy/prometheus: the alert and recording rules pass Prometheus's own checker and unit tests, and name only
series the service really exports."""
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[1] / "deploy" / "prometheus"


def promtool() -> str:
    found = shutil.which("promtool") or str(Path(sys.executable).parent / "promtool")
    if not Path(found).is_file():
        pytest.skip("promtool not found: `make setup` takes it from Debian's prometheus package "
                    "(apt-get download prometheus); install Prometheus to run these checks")
    return found


def run(*args) -> str:
    out = subprocess.run([promtool(), *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def test_rules_and_config_pass_promtool_check():
    assert "SUCCESS: 17 rules found" in run("check", "rules", "rules.yml")
    assert "is valid prometheus config file syntax" in run("check", "config", "prometheus.yml")


def test_rule_unit_tests_pass():
    assert "SUCCESS" in run("test", "rules", "rules_test.yml")


def test_a_broken_expectation_fails(tmp_path):
    """The unit tests can fail: an alert expected at the wrong time makes promtool say so."""
    bad = (DEPLOY / "rules_test.yml").read_text().replace("eval_time: 5m\n        alertname: RerankerDown",
                                                          "eval_time: 2m\n        alertname: RerankerDown")
    assert bad != (DEPLOY / "rules_test.yml").read_text()
    (tmp_path / "rules.yml").write_text((DEPLOY / "rules.yml").read_text())
    (tmp_path / "rules_test.yml").write_text(bad)
    out = subprocess.run([promtool(), "test", "rules", "rules_test.yml"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode != 0 and "RerankerDown" in out.stdout + out.stderr


def test_every_series_in_the_rules_is_exported_by_the_service(overlap_scorer):
    """The names the rules use come from a real app's /metrics after real traffic, not from a list."""
    from fastapi.testclient import TestClient

    from course_lib.service import ScalableRerankingService, create_app

    body = {"query": "capital of france", "candidates": [{"id": "a", "text": "paris is the capital of france"},
                                                         {"id": "b", "text": "bananas"}]}
    from course_lib.service.rollout import Rollout

    # with a candidate in shadow on every request, so the shadow's series exist too
    rollout = Rollout(ScalableRerankingService(scorer=overlap_scorer), ScalableRerankingService(scorer=overlap_scorer),
                      mode="shadow", share=1.0)
    with TestClient(create_app(rollout=rollout)) as c:
        c.post("/rerank", json=body)
        c.post("/rerank", json=body)  # a cache hit
        c.post("/v2/rerank", json={"query": "q", "documents": ["a"]})
        time.sleep(0.2)  # the shadow's comparisons finish after the answers
        exported = {line.split("{")[0].split(" ")[0] for line in c.get("/metrics").text.splitlines()
                    if line and not line.startswith("#")}
    rules = (DEPLOY / "rules.yml").read_text()
    used = set(re.findall(r"\b(rerank_[a-z_]+)\b", rules))
    assert used and used <= exported, sorted(used - exported)
    assert {"rerank_http_requests_total", "rerank_http_latency_seconds_bucket", "rerank_degraded_total",
            "rerank_queue_capacity_pairs", "rerank_shadow_top_overlap_sum", "rerank_shadow_requests_total"} <= used
