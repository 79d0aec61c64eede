"""The instructor's one entry point (course_lib.instructor.__main__)."""
import subprocess
import sys

from course_lib import settings
from course_lib.instructor.__main__ import COMMANDS, SCRIPTS, main, run_script


def test_help_lists_every_command_and_script():
    out = subprocess.run([sys.executable, "-m", "course_lib.instructor", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for name in [*COMMANDS, *SCRIPTS]:
        assert f"  {name} " in out.stdout


def test_every_script_command_names_a_file_of_the_checkout():
    missing = [f for f, _ in SCRIPTS.values() if not (settings.CHECKOUT_DIR / "scripts" / f).is_file()]
    assert missing == []


def test_unknown_command_fails_clearly(capsys):
    assert main(["warp-drive"]) == 2
    assert "unknown command 'warp-drive'" in capsys.readouterr().err


def test_a_command_passes_its_arguments_on(capsys):
    try:  # argparse prints the command's own help and exits 0
        main(["calibrate", "--help"])
    except SystemExit as exc:
        assert exc.code == 0
    assert "fit calibration" in capsys.readouterr().out
    assert run_script("choose-levels", ["--help"]) == 0
    assert "--margins" in capsys.readouterr().out
