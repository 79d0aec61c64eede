"""The one base of the course's own errors, :class:`CourseError`.

Each error also subclasses the built-in it has always been (``DataError`` is a ``ValueError``,
``ModelLoadError`` a ``RuntimeError``, ...), so ``except ValueError`` keeps working, and
``except CourseError`` catches every error the course raises on purpose.

>>> from course_lib.data import DataError
>>> issubclass(DataError, CourseError), issubclass(DataError, ValueError)
(True, True)
"""

from __future__ import annotations

__all__ = ["CourseError"]


class CourseError(Exception):
    """Raised by the course on purpose, with a message that says what to do."""
