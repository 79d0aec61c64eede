"""The package itself (course_lib/__init__.py): importing it, and the modules that must start fast, is cheap."""
import subprocess
import sys

# --- fixed in the restructure (failed on 72085cf) ------------------------------------------

def test_importing_the_package_and_light_modules_does_not_import_torch():
    code = "import course_lib, course_lib.metrics, course_lib.cli, course_lib.grading, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"
