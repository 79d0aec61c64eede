"""Running the service: uvicorn in this process (``course-lib serve``), or in a subprocess you can
start and stop from a notebook or a test (:class:`ServerProcess`).

Loopback by default.  On any other address the server refuses to start without an API key
(``--api-key`` or ``$COURSE_API_KEY``), and then checks it on every request.

Example
-------
>>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
(True, True, False)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from course_lib import settings
from course_lib.service.config import ServiceConfig, is_loopback, resolve_api_key  # noqa: F401  (the server's API)

ENV_API_KEY = settings.API_KEY


def course_first_stage():
    """The first stage ``/search`` uses by default: dense retrieval over the course corpus, in a Chroma
    store under the cache folder, built on the first search (so the server starts at once)."""
    return _OnFirstUse(_build_course_store)


def _build_course_store():
    from course_lib.data import load_course_corpus
    from course_lib.retrieval import ChromaStore

    store = ChromaStore(settings.cache_dir() / "service_chroma", collection="course")
    store.add_corpus(load_course_corpus().corpus, show_progress=False)
    return store


class _OnFirstUse:
    """A first stage (:class:`course_lib.retrieval.FirstStage`'s methods) built by ``build()`` when
    first searched (thread-safe)."""

    def __init__(self, build):
        import threading

        self._build, self._stage, self._lock = build, None, threading.Lock()

    def _get(self):
        with self._lock:
            if self._stage is None:
                self._stage = self._build()
            return self._stage

    def search(self, queries, k=100):
        return self._get().search(queries, k)

    def document(self, doc_id):
        return self._get().document(doc_id)

    def retrieve(self, query, k=50):
        return self._get().retrieve(query, k)


def run_server(config: ServiceConfig = ServiceConfig(), *, first_stage=None) -> None:
    """Serve the app with uvicorn until SIGINT/SIGTERM; shutdown finishes in-flight batches.

    ``first_stage`` answers ``/search`` (default: :func:`course_first_stage`)."""
    import uvicorn

    from course_lib.service.app import create_app
    from course_lib.service.core import ScalableRerankingService
    from course_lib.service.rollout import from_config

    key = config.resolved_api_key()
    # A server process forks no workers, so the tokenizer may use every core (the course's policy turns its
    # threads off by default, for notebooks and tests that fork).
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if config.tokenizer_threads else "false"
    service = ScalableRerankingService.from_config(config)
    rollout = from_config(config, service)  # --shadow / --canary: a candidate model beside the primary
    # serving starts at once; /ready (and scoring) answer 503 until the model is warm
    app = create_app(service, search=first_stage if first_stage is not None else course_first_stage(), api_key=key,
                     background_warm_up=True, public_ops=config.public_ops(), rollout=rollout)
    uvicorn.run(app, host=config.host, port=config.port, log_level=config.log_level, timeout_graceful_shutdown=30)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerProcess:
    """``course-lib serve`` in a subprocess on a free loopback port; a context manager.

    >>> # with ServerProcess(["--no-batching"]) as srv:
    >>> #     httpx.post(srv.url + "/rerank", json=...)
    """

    def __init__(self, args: list[str] | None = None, host: str = "127.0.0.1", port: int | None = None,
                 startup_timeout_s: float = 120.0, env: dict | None = None):
        if not is_loopback(host):
            raise ValueError("ServerProcess starts servers on loopback addresses only")
        self.host, self.port = host, port or free_port(host)
        self.args = list(args or [])
        self.startup_timeout_s = startup_timeout_s
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.url = f"http://{self.host}:{self.port}"

    def start(self) -> "ServerProcess":
        import httpx

        cmd = [sys.executable, "-m", "course_lib.cli", "serve", "--host", self.host, "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env)
        t0 = time.monotonic()
        headers = {"X-API-Key": self.env[ENV_API_KEY]} if self.env.get(ENV_API_KEY) else {}
        while time.monotonic() - t0 < self.startup_timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.proc.stdout.read()[-2000:]}")
            try:
                code = httpx.get(self.url + "/ready", timeout=2, headers=headers, trust_env=False).status_code
                if code == 404:  # an app without readiness (Ray Serve's): its liveness
                    code = httpx.get(self.url + "/health", timeout=2, headers=headers, trust_env=False).status_code
                if code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"server not ready after {self.startup_timeout_s} s")

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGINT (uvicorn's graceful shutdown: in-flight requests finish), then wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def output(self) -> str:
        """What the server printed (after :meth:`stop`)."""
        return self.proc.stdout.read() if self.proc is not None and self.proc.stdout and self.proc.poll() is not None else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
