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

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time

ENV_API_KEY = "COURSE_API_KEY"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, api_key: str | None) -> str | None:
    """The key to require: the one given, else ``$COURSE_API_KEY``; on a non-loopback host one is mandatory."""
    key = api_key or os.environ.get(ENV_API_KEY) or None
    if key is None and not is_loopback(host):
        raise ValueError(f"refusing to listen on {host} without an API key: pass --api-key or set {ENV_API_KEY} "
                         "(or bind 127.0.0.1)")
    return key


def run_server(host: str = "127.0.0.1", port: int = 8000, model: str | None = None, api_key: str | None = None,
               batching: bool = True, max_wait_ms: float = 5.0, max_batch_pairs: int = 256, cache_size: int = 10_000,
               max_queue_pairs: int = 4096, log_level: str = "warning") -> None:
    """Serve the app with uvicorn until SIGINT/SIGTERM; shutdown finishes in-flight batches."""
    import uvicorn

    from course_lib.service.app import create_app
    from course_lib.service.core import ScalableRerankingService

    key = resolve_api_key(host, api_key)
    service = ScalableRerankingService(model, max_batch_pairs=max_batch_pairs, max_wait_ms=max_wait_ms,
                                       cache_size=cache_size, max_queue_pairs=max_queue_pairs, batching=batching)
    app = create_app(service, api_key=key)
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30)


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
                if httpx.get(self.url + "/health", timeout=2, headers=headers, trust_env=False).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"server not healthy after {self.startup_timeout_s} s")

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
