import json
import subprocess
import sys

from helpers import write_course_as_beir

from course_lib.cli import main


def test_check_all_ok(capsys, shared_data):
    code = main(["check", "--data", str(shared_data)])
    out = capsys.readouterr().out
    assert "[FAIL]" not in out, out
    assert code == 0 and out.count("[OK]") >= 18


def test_check_prints_no_machine_paths(capsys, shared_data):
    from pathlib import Path

    import course_lib

    main(["check", "--data", str(shared_data)])
    out = capsys.readouterr().out
    root = Path(course_lib.__file__).resolve().parents[1]
    assert str(root) not in out and "course_lib/course_reranker/assets" in out, out


def test_check_warns_on_a_version_that_differs_from_the_lock(capsys, tmp_path, shared_data):
    from importlib.metadata import version

    from course_lib.env import lock_file

    lock = tmp_path / "requirements.lock"
    lines = [ln for ln in lock_file().read_text().splitlines() if not ln.startswith("numpy==")]
    lock.write_text("\n".join(lines + ["numpy==0.0.1"]) + "\n")
    code = main(["check", "--data", str(shared_data), "--lock", str(lock)])
    out = capsys.readouterr().out
    assert f"[WARN] numpy {version('numpy')} (locked 0.0.1)" in out, out
    assert f"numpy {version('numpy')} (locked 0.0.1)" in next(ln for ln in out.splitlines() if "differ from requirements.lock" in ln)
    assert code == 0 and "[FAIL]" not in out  # a warning, not a failure


def test_check_reports_fail_for_bad_data_dir(capsys, tmp_path):
    code = main(["check", "--data", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1 and "[FAIL] data directory" in out


def test_eval_json_on_a_small_beir_dir(tmp_path, course_ds, capsys, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    root = write_course_as_beir(course_ds, tmp_path / "mini", n_queries=6)  # not "course": no shipped scores
    assert main(["eval", "--data", str(root), "--k", "20", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_queries"] == 6 and res["k"] == 20
    for sys_name in ("first_stage", "reranked", "fused"):
        assert {"ndcg@10", "mrr@10", "map", "recall@10", "recall@20"} <= set(res[sys_name])
    assert res["pairs_scored"] == 6 * 20 and res["rerank_seconds_per_query"] > 0
    # second run: every pair from the cache
    assert main(["eval", "--data", str(root), "--k", "20", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["pairs_scored"] == 0 and again["reranked"] == res["reranked"]


def test_eval_first_stage_only_and_bad_inputs(tmp_path, course_ds, capsys):
    root = write_course_as_beir(course_ds, tmp_path / "c2", n_queries=3)
    assert main(["eval", "--data", str(root), "--first-stage", "bm25", "--reranker", "none", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert "reranked" not in res and res["first_stage"]["name"] == "bm25"
    assert main(["eval", "--data", str(tmp_path / "missing"), "--json"]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["eval", "--data", str(root), "--reranker", "nobody/nothing", "--json"]) == 2


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "course_lib.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "grade" in out.stdout
    assert "train-reranker" not in out.stdout  # the instructor's commands have their own entry point


def test_convert_command_writes_a_loadable_dataset(tmp_path, capsys):
    from course_lib.data import load_beir

    src = tmp_path / "mine.csv"
    src.write_text("query,passage,label\nwhat is a stroke?,A stroke cuts blood to the brain.,2\n")
    assert main(["convert", str(src), str(tmp_path / "mine")]) == 0
    assert "1 passages, 1 queries, 1 judgements" in capsys.readouterr().out
    assert load_beir(tmp_path / "mine").qrels == {"q1": {"d1": 2}}
    assert main(["convert", str(src), str(tmp_path / "mine")]) == 2  # refuses to overwrite, says why
    assert "already holds" in capsys.readouterr().err


def test_grade_needs_a_notebook_or_all(capsys):
    assert main(["grade"]) == 2
    assert "--all" in capsys.readouterr().err
