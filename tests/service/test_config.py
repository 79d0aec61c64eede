"""One service configuration (course_lib.service.config): checked once, read by engine, server, CLI and Ray Serve."""
import argparse

import pytest

from course_lib.service.config import ServiceConfig, is_loopback, resolve_api_key


def test_the_command_line_is_made_from_the_config_and_round_trips():
    parser = argparse.ArgumentParser()
    ServiceConfig.add_arguments(parser)
    assert ServiceConfig.from_args(parser.parse_args([])) == ServiceConfig()  # one set of defaults
    cfg = ServiceConfig.from_args(parser.parse_args(["--no-batching", "--max-wait-ms", "2", "--cache-size", "0",
                                                     "--port", "9001", "--replicas", "4"]))
    assert (cfg.batching, cfg.max_wait_ms, cfg.cache_size, cfg.port, cfg.replicas) == (False, 2.0, 0, 9001, 4)


def test_bad_settings_fail_when_the_config_is_made():
    for bad in ({"max_batch_pairs": 0}, {"max_wait_ms": -1}, {"cache_size": -5}, {"port": 70000}, {"replicas": 0}):
        with pytest.raises(ValueError):
            ServiceConfig(**bad)


def test_the_engine_is_built_from_the_config(overlap_scorer):
    from course_lib.service.core import ScalableRerankingService

    svc = ScalableRerankingService.from_config(ServiceConfig(max_batch_pairs=7, batching=False, cache_size=0),
                                               scorer=overlap_scorer)
    assert svc.max_batch_pairs == 7 and svc.batching is False and svc.cache is None


def test_a_key_is_required_off_loopback(monkeypatch):
    monkeypatch.delenv("COURSE_API_KEY", raising=False)
    assert resolve_api_key("127.0.0.1", None) is None and ServiceConfig(host="::1").resolved_api_key() is None
    with pytest.raises(ValueError, match="without an API key"):
        ServiceConfig(host="0.0.0.0").resolved_api_key()
    monkeypatch.setenv("COURSE_API_KEY", "from-env")
    assert ServiceConfig(host="192.0.2.1").resolved_api_key() == "from-env"
    assert is_loopback("localhost") and not is_loopback("example.org")


def test_ops_endpoints_are_public_on_loopback_and_behind_the_key_elsewhere():
    parser = argparse.ArgumentParser()
    ServiceConfig.add_arguments(parser)
    assert ServiceConfig.from_args(parser.parse_args([])).public_ops()
    remote = ServiceConfig.from_args(parser.parse_args(["--host", "0.0.0.0", "--api-key", "k"]))
    assert not remote.public_ops()
    assert remote.replace(ops_endpoints="public").public_ops() and not ServiceConfig(ops_endpoints="key").public_ops()
    with pytest.raises(ValueError, match="ops_endpoints"):
        ServiceConfig(ops_endpoints="open")
