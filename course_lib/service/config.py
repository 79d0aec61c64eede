"""One configuration object for the service: :class:`ServiceConfig`.

The engine (:class:`~course_lib.service.core.ScalableRerankingService`), the HTTP server
(:func:`~course_lib.service.server.run_server`), ``course-lib serve`` and Ray Serve
(:mod:`~course_lib.service.ray_serve`) all read their settings from it; the command line's options are
made from its fields (:meth:`ServiceConfig.add_arguments`), so a default is written once.

Loopback by default; on any other address a key is required (:meth:`ServiceConfig.resolved_api_key`).

>>> cfg = ServiceConfig(max_wait_ms=2.0)
>>> cfg.engine_kwargs()["max_wait_ms"], cfg.host
(2.0, '127.0.0.1')
>>> ServiceConfig(host="0.0.0.0").resolved_api_key()
Traceback (most recent call last):
...
ValueError: refusing to listen on 0.0.0.0 without an API key: pass --api-key or set COURSE_API_KEY (or bind 127.0.0.1)
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, fields, replace

from course_lib import settings

__all__ = ["ServiceConfig", "is_loopback", "resolve_api_key"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(host: str, api_key: str | None) -> str | None:
    """The key to require: the one given, else ``$COURSE_API_KEY``; on a non-loopback host one is mandatory."""
    key = api_key or settings.api_key()
    if key is None and not is_loopback(host):
        raise ValueError(f"refusing to listen on {host} without an API key: pass --api-key or set {settings.API_KEY} "
                         "(or bind 127.0.0.1)")
    return key


#: Help text of each field (the command line's too).
_HELP = {
    "host": "address to bind (other than loopback needs an API key)",
    "port": "port to listen on",
    "model": "reranker name/path (default: the course reranker)",
    "api_key": f"require this key on every request (default ${settings.API_KEY})",
    "batching": "merge concurrent requests into one model pass (micro-batching)",
    "max_wait_ms": "how long a batch waits for more requests",
    "max_batch_pairs": "pairs per model pass at most",
    "max_batch_tokens": "a model pass takes no more requests once it holds this many estimated tokens "
                        "(default: 65536 on a GPU, no token limit on a CPU)",
    "cache_size": "pair-cache entries (0 = no cache)",
    "cache_ttl_s": "seconds a cached pair score stays valid",
    "max_queue_pairs": "pairs allowed to wait before 503",
    "default_deadline_ms": "deadline of a request that sends none (default: none)",
    "replicas": "Ray Serve replicas (with --ray)",
    "log_level": "uvicorn's log level",
    "tokenizer_threads": "let the tokenizer use every core (safe in a server process that forks no workers)",
    "shadow": "a candidate reranker (name/path) scored in shadow on a sampled share of requests, never answering",
    "shadow_rate": "the share of requests (0..1) the shadow scores",
    "canary": "a candidate reranker (name/path) that answers a share of requests",
    "canary_share": "the share of requests (0..1) the canary answers",
    "ops_endpoints": "who may call /health, /ready and /metrics: 'public' (no key), 'key' (the API key, when one "
                     "is set) or 'auto' (public on loopback, the key elsewhere)",
}


@dataclass(frozen=True)
class ServiceConfig:
    """Every setting of the reranking service, checked once, shared by engine, server, CLI and Ray Serve."""

    host: str = "127.0.0.1"
    port: int = 8000
    model: str | None = None
    api_key: str | None = None
    batching: bool = True
    max_wait_ms: float = 5.0
    max_batch_pairs: int = 256
    max_batch_tokens: int | None = None
    cache_size: int = 10_000
    cache_ttl_s: float | None = 3600.0
    max_queue_pairs: int = 4096
    default_deadline_ms: float | None = None
    replicas: int = 2
    log_level: str = "warning"
    tokenizer_threads: bool = True
    ops_endpoints: str = "auto"
    shadow: str | None = None
    shadow_rate: float = 0.1
    canary: str | None = None
    canary_share: float = 0.05

    def __post_init__(self):
        if self.shadow is not None and self.canary is not None:
            raise ValueError("give --shadow or --canary, not both: one candidate at a time")
        for name in ("shadow_rate", "canary_share"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.ops_endpoints not in ("auto", "public", "key"):
            raise ValueError(f"ops_endpoints must be 'auto', 'public' or 'key', got {self.ops_endpoints!r}")
        for name in ("max_batch_pairs", "max_queue_pairs", "replicas"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {self.max_wait_ms}")
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {self.max_batch_tokens}")
        if self.cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {self.cache_size}")
        if not 0 < int(self.port) < 65536:
            raise ValueError(f"port must lie in 1..65535, got {self.port}")

    def resolved_api_key(self) -> str | None:
        """:func:`resolve_api_key` for this host and key."""
        return resolve_api_key(self.host, self.api_key)

    def public_ops(self) -> bool:
        """Whether ``/health``, ``/ready`` and ``/metrics`` answer without the key: ``ops_endpoints``, where
        ``auto`` means public on a loopback address and behind the key anywhere else.

        >>> ServiceConfig().public_ops(), ServiceConfig(host="0.0.0.0", api_key="k").public_ops()
        (True, False)
        >>> ServiceConfig(host="0.0.0.0", api_key="k", ops_endpoints="public").public_ops()
        True
        """
        return self.ops_endpoints == "public" or (self.ops_endpoints == "auto" and is_loopback(self.host))

    def engine_kwargs(self) -> dict:
        """The keyword arguments of :class:`~course_lib.service.core.ScalableRerankingService` this config sets."""
        return dict(max_batch_pairs=self.max_batch_pairs, max_batch_tokens=self.max_batch_tokens or "auto",
                    max_wait_ms=self.max_wait_ms, cache_size=self.cache_size,
                    cache_ttl_s=self.cache_ttl_s, max_queue_pairs=self.max_queue_pairs, batching=self.batching,
                    default_deadline_ms=self.default_deadline_ms)

    def rollout_plan(self) -> tuple[str, str, float] | None:
        """``(mode, candidate model, share)`` when a shadow or a canary is set, else None.

        >>> ServiceConfig(shadow="runs/new-model").rollout_plan()
        ('shadow', 'runs/new-model', 0.1)
        """
        if self.shadow is not None:
            return "shadow", self.shadow, float(self.shadow_rate)
        if self.canary is not None:
            return "canary", self.canary, float(self.canary_share)
        return None

    def replace(self, **changes) -> "ServiceConfig":
        """A copy with some settings changed (checked again)."""
        return replace(self, **changes)

    @classmethod
    def add_arguments(cls, parser) -> None:
        """One ``--option`` per field on an ``argparse`` parser (``--no-batching`` for ``batching``)."""
        for f in fields(cls):
            default = f.default
            flag = "--" + f.name.replace("_", "-")
            if f.name == "batching":
                parser.add_argument("--no-batching", dest="batching", action="store_false",
                                    help="one request per model pass (the baseline)")
            elif f.name == "tokenizer_threads":
                parser.add_argument("--no-tokenizer-threads", dest="tokenizer_threads", action="store_false",
                                    help="tokenise on one thread (TOKENIZERS_PARALLELISM=false)")
            elif isinstance(default, bool):
                parser.add_argument(flag, action="store_true", help=_HELP[f.name])
            elif f.name == "ops_endpoints":
                parser.add_argument(flag, choices=("auto", "public", "key"), default=default, help=_HELP[f.name])
            else:
                kind = {"port": int, "max_batch_pairs": int, "max_batch_tokens": int, "cache_size": int,
                        "max_queue_pairs": int, "replicas": int,
                        "max_wait_ms": float, "cache_ttl_s": float, "default_deadline_ms": float,
                        "shadow_rate": float, "canary_share": float}.get(f.name, str)
                parser.add_argument(flag, type=kind, default=default, help=_HELP[f.name])

    @classmethod
    def from_args(cls, args) -> "ServiceConfig":
        """The config an ``argparse`` namespace made by :meth:`add_arguments` holds."""
        return cls(**{f.name: getattr(args, f.name) for f in fields(cls)})
