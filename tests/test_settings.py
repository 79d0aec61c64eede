"""One settings module (course_lib.settings): every COURSE_* variable read in one place, at call time."""
import ast
from pathlib import Path

import pytest

from course_lib import settings


def test_readers_follow_the_environment_at_call_time(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "c"))
    assert settings.cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
    monkeypatch.setenv("COURSE_DATA_DIR", "~/data")
    assert settings.data_dir() == Path("~/data").expanduser()
    monkeypatch.setenv("COURSE_API_KEY", "")
    assert settings.api_key() is None  # empty counts as unset
    monkeypatch.setenv("COURSE_API_KEY", "k")
    assert settings.api_key() == "k"
    with pytest.raises(KeyError, match="not a course setting"):
        settings.get("HOME")


def test_no_other_module_reads_a_course_variable_from_the_environment():
    """Every COURSE_* variable is read through course_lib.settings, nowhere else."""
    offenders = []
    for path in settings.PACKAGE_DIR.rglob("*.py"):
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in settings.VARIABLES:
                offenders.append(f"{path.relative_to(settings.PACKAGE_DIR)}:{node.lineno} {node.value}")
    assert offenders == []
