"""One exception base (course_lib.errors.CourseError) under every error the course raises on purpose."""
import pytest

from course_lib.errors import CourseError


@pytest.mark.parametrize("module, name, builtin", [
    ("course_lib.data", "DataError", ValueError),
    ("course_lib.models", "ModelLoadError", RuntimeError),
    ("course_lib.training", "TrainingRecordError", ValueError),
    ("course_lib.grading", "GradingError", RuntimeError),
    ("course_lib.service.core", "RequestError", ValueError),
    ("course_lib.service.core", "RequestTooLarge", ValueError),
    ("course_lib.service.core", "ServiceBusy", RuntimeError),
])
def test_each_course_error_is_a_course_error_and_keeps_its_builtin(module, name, builtin):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, CourseError) and issubclass(cls, builtin)


def test_one_except_catches_a_data_error():
    from course_lib.data import load_beir

    with pytest.raises(CourseError, match="no-such-dataset"):
        load_beir("no-such-dataset", data_dir="/nonexistent")
