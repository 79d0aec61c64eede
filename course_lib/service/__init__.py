"""Deployment: the reranker as a service (notebook 07).

* :mod:`~course_lib.service.core` — :class:`ScalableRerankingService`: micro-batching across
  concurrent callers, a pair cache, deadlines with a first-stage fallback, back-pressure;
* :mod:`~course_lib.service.app` — the HTTP app (FastAPI): ``/rerank``, ``/search``,
  ``/health``, ``/ready``, ``/metrics`` (Prometheus), validation, limits, an optional API key; the shapes
  Cohere, TEI and Jina clients send (:mod:`~course_lib.service.compat`);
* :mod:`~course_lib.service.server` — ``course-lib serve`` (uvicorn) and :class:`ServerProcess`
  (a server in a subprocess, for notebooks and tests);
* :mod:`~course_lib.service.loadtest` — ``course-lib loadtest``: bounded, loopback only;
* :mod:`~course_lib.service.ray_serve` — the same API as N replicas on Ray Serve.
* :mod:`~course_lib.service.rollout` — a candidate model beside the primary: in shadow (compared, never
  answering) or as a canary (answering a share, labelled by fingerprint);
* :mod:`~course_lib.service.cost` — ``course-lib cost``: machine-hours and money per 1,000 queries from speed records.

Importing this package is light; FastAPI, uvicorn and Ray load when their module is used.
"""

from course_lib.scorers.delayed import DelayedScorer  # notebook 07 imports it from here
from course_lib.service.core import (
    RequestError,
    RequestTooLarge,
    ScalableRerankingService,
    ServiceBusy,
    merge_jobs,
)


def create_app(*args, **kwargs):
    """:func:`course_lib.service.app.create_app` (imported on first use: FastAPI is not needed to batch)."""
    from course_lib.service.app import create_app as _create_app

    return _create_app(*args, **kwargs)


__all__ = ["DelayedScorer", "ScalableRerankingService", "ServiceBusy", "RequestError", "RequestTooLarge", "merge_jobs", "create_app"]
