"""The reranking service over HTTP: FastAPI, validated requests, limits, metrics, an optional API key.

Endpoints:

* ``POST /rerank`` — ``{"query", "candidates": [{"id", "text", "score"?}], "top_k"?, "deadline_ms"?}``;
* ``POST /search`` — ``{"query", "k"?, "m"?, "deadline_ms"?}``: two-stage search over the first stage
  the app was given (``course-lib serve``: a persisted Chroma collection of the course corpus);
* ``GET /health`` — status, the model's fingerprint, queue depth;
* ``GET /metrics`` — Prometheus text: requests by status, latency and batch-size histograms,
  cache hits/misses, queue depth.

Malformed input is a 422 naming the fields; too many candidates, an over-long passage or an
over-large body is a 413; a full queue is a 503 with ``Retry-After``; a missing or wrong API
key (when one is set) is a 401.  Every error is JSON with a ``message``.

Example
-------
>>> from fastapi.testclient import TestClient
>>> from course_lib.service import ScalableRerankingService, create_app
>>> with TestClient(create_app(ScalableRerankingService())) as client:
...     r = client.post("/rerank", json={"query": "capital of France", "top_k": 1,
...         "candidates": [{"id": "a", "text": "Paris is the capital of France."}, {"id": "b", "text": "Bananas."}]})
...     bad = client.post("/rerank", json={"query": "x"})
>>> r.status_code, r.json()["results"][0]["id"], bad.status_code
(200, 'a', 422)
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from course_lib.service.core import RequestError, RequestTooLarge, ScalableRerankingService, ServiceBusy


@dataclass(frozen=True)
class Limits:
    """Request limits.  Beyond ``max_candidates``, ``max_query_chars`` or ``max_body_bytes`` the answer is 413
    (payload too large).  A passage longer than ``max_passage_chars`` is not refused: it is cut there (at a
    space) and its id listed in the answer's ``truncated`` — the model reads only a pair's first ``max_length``
    tokens (a few hundred words) anyway, so the cut changes no score and bounds the work."""

    max_candidates: int = 200
    max_passage_chars: int = 8_000
    max_query_chars: int = 2_000
    max_body_bytes: int = 2_000_000


class Candidate(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = Field(min_length=1)
    text: str
    score: float | None = None


class RerankBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    candidates: list[Candidate]
    top_k: int | None = Field(default=10, ge=0)
    deadline_ms: float | None = Field(default=None, gt=0)


class SearchBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1)
    k: int = Field(default=30, ge=1, le=200)
    m: int = Field(default=5, ge=1, le=200)
    deadline_ms: float | None = Field(default=None, gt=0)


class HTTPError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        self.status, self.message, self.headers = status, message, headers or {}


def _metrics(service: ScalableRerankingService):
    """Prometheus metrics in a registry of their own (several apps may live in one process)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.core import CounterMetricFamily

    reg = CollectorRegistry()
    m = {
        "requests": Counter("rerank_http_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=reg),
        "latency": Histogram("rerank_http_latency_seconds", "Request latency", ["endpoint"], registry=reg,
                             buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)),
        "batch": Histogram("rerank_batch_pairs", "Pairs scored per model pass", registry=reg,
                           buckets=(1, 5, 10, 20, 50, 100, 200, 400, 800)),
        "queue": Gauge("rerank_queue_pairs", "Pairs waiting to be scored", registry=reg),
    }
    m["queue"].set_function(lambda: service.queued_pairs)

    class _ServiceCounters:
        def collect(self):
            s = service.stats
            for key, doc in (("cache_hits", "Pair-cache hits"), ("cache_misses", "Pair-cache misses"),
                             ("pairs_scored", "Pairs scored by the model"), ("degraded", "Requests answered degraded"),
                             ("busy", "Requests refused as busy")):
                yield CounterMetricFamily(f"rerank_{key}", doc, value=s[key])

    reg.register(_ServiceCounters())
    service.batch_listeners.append(lambda pairs, requests, seconds: m["batch"].observe(pairs) if pairs else None)
    return reg, m


def create_app(service: ScalableRerankingService | None = None, *, search=None, api_key: str | None = None,
               limits: Limits = Limits(), warm_up: bool = True) -> FastAPI:
    """The FastAPI app around a service.

    Args:
        service: the engine (None = a new one on the course reranker).
        search: the first stage ``/search`` uses (a :class:`course_lib.retrieval.FirstStage`, or anything
            with ``retrieve(query, k)``); None: no ``/search`` route (``course-lib serve`` passes the course
            corpus's, :func:`course_lib.service.server.course_first_stage`).
        api_key: when set, every request must send it (``X-API-Key`` or ``Authorization: Bearer``).
        limits: sizes beyond which a request is refused with 413.
        warm_up: score a few pairs at startup (:meth:`ScalableRerankingService.warm_up`).
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    service = service or ScalableRerankingService()
    registry, m = _metrics(service)

    @asynccontextmanager
    async def lifespan(app):
        if warm_up:
            await asyncio.to_thread(service.warm_up)  # first passes are slow; seeds the rate deadlines use
        yield
        await service.stop()  # graceful: finish what is queued and in flight

    app = FastAPI(title="course_lib reranking service", lifespan=lifespan)
    install_errors(app)

    check_key = key_checker(api_key)

    app.add_middleware(_Observe, metrics=m, max_body_bytes=limits.max_body_bytes)

    def check_sizes(query: str, candidates) -> None:
        err = size_message(limits, query, candidates)
        if err is not None:
            raise HTTPError(413, err)

    async def run(req: dict) -> dict:
        try:
            return await service.rerank(req)
        except RequestTooLarge as exc:
            raise HTTPError(413, str(exc)) from None
        except RequestError as exc:
            raise HTTPError(422, f"invalid request: {exc}") from None
        except ServiceBusy as exc:
            raise HTTPError(503, f"busy: {exc}", headers={"Retry-After": str(int(exc.retry_after_s))}) from None

    @app.post("/rerank", dependencies=[Depends(check_key)])
    async def rerank(body: RerankBody):
        cands = [c.model_dump(exclude_none=True) for c in body.candidates]
        check_sizes(body.query, cands)
        cands, cut = cut_long_passages(limits, cands)
        req = {"id": None, "query": body.query, "candidates": cands, "top_k": body.top_k}
        if body.deadline_ms is not None:
            req["deadline_ms"] = body.deadline_ms
        out = await run(req)
        out.pop("request_id", None)
        if cut:
            out["truncated"] = cut  # passages cut to max_passage_chars: reported, not refused
        return JSONResponse(out)  # plain JSON: no second pass through FastAPI's encoder

    async def search_route(body: SearchBody):
        check_sizes(body.query, [])
        hits = await asyncio.to_thread(search.retrieve, body.query, body.k)  # off the event loop
        cands, _ = cut_long_passages(limits, [{"id": h["id"], "text": h["text"], "score": h["score"]} for h in hits])
        req = {"id": None, "query": body.query, "candidates": cands, "top_k": body.m}
        if body.deadline_ms is not None:
            req["deadline_ms"] = body.deadline_ms
        out = await run(req)
        out.pop("request_id", None)
        return JSONResponse(out)

    if search is not None:
        app.post("/search", dependencies=[Depends(check_key)])(search_route)

    @app.get("/health", dependencies=[Depends(check_key)])
    async def health():
        return {"status": "ok", "model": service.fingerprint, "batching": service.batching,
                "queued_pairs": service.queued_pairs}

    @app.get("/metrics", dependencies=[Depends(check_key)])
    async def metrics():
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.service = service
    return app


class _Observe:
    """Pure ASGI middleware: refuses over-large bodies (413) and records each request's status and
    latency (lighter per request than FastAPI's ``@app.middleware``, which matters under load)."""

    ENDPOINTS = ("/rerank", "/search", "/health")

    def __init__(self, app, metrics: dict, max_body_bytes: int):
        self.app, self.m, self.max_body_bytes = app, metrics, max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_bytes:
            response = _json(413, f"request body of {int(length)} bytes exceeds the limit of {self.max_body_bytes}")
            status["code"] = 413
            await response(scope, receive, send)
        else:
            async def send_status(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            await self.app(scope, receive, send_status)
        path = scope.get("path", "")
        if path in self.ENDPOINTS:
            self.m["requests"].labels(path, str(status["code"])).inc()
            self.m["latency"].labels(path).observe(time.perf_counter() - t0)


def key_checker(api_key: str | None):
    """A FastAPI dependency that refuses (401) a request without ``api_key`` (``X-API-Key`` or
    ``Authorization: Bearer``); with no key set it lets everything through."""

    async def check_key(request: Request):
        if api_key is None:
            return
        sent = request.headers.get("x-api-key") or ""
        auth = request.headers.get("authorization") or ""
        if not sent and auth.lower().startswith("bearer "):
            sent = auth[7:]
        if not hmac.compare_digest(sent.encode(), api_key.encode()):
            raise HTTPError(401, "missing or wrong API key (send it as X-API-Key)")

    # a real class, not the string this module's ``from __future__ import annotations`` leaves: the
    # dependency may be pickled into a Ray Serve replica, where the string could not be resolved
    check_key.__annotations__ = {"request": Request}
    return check_key


def install_errors(app: FastAPI) -> None:
    """JSON errors with a ``message``: :class:`HTTPError`, and 422 naming the invalid fields."""

    @app.exception_handler(HTTPError)
    async def http_error(request: Request, exc: HTTPError):
        return _json(exc.status, exc.message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        where = [".".join(str(p) for p in e.get("loc", ()) if p != "body") or "body" for e in errors]
        detail = [{"field": w, "message": e.get("msg")} for w, e in zip(where, errors)]
        return _json(422, f"invalid request: {', '.join(sorted(set(where)))}", detail=detail)


def size_message(limits: Limits, query: str, candidates) -> str | None:
    """Why a request is too large (HTTP 413), or None."""
    if len(query) > limits.max_query_chars:
        return f"query of {len(query)} characters exceeds the limit of {limits.max_query_chars}"
    if len(candidates) > limits.max_candidates:
        return f"{len(candidates)} candidates exceed the limit of {limits.max_candidates} per request"
    return None


def cut_long_passages(limits: Limits, candidates: list[dict]) -> tuple[list[dict], list[str]]:
    """Candidates whose text is longer than ``limits.max_passage_chars`` cut there (at the last space before
    it, when there is one), as new dicts; returns ``(candidates, ids of those cut)``.

    >>> cands, cut = cut_long_passages(Limits(max_passage_chars=10), [{"id": "a", "text": "short"},
    ...                                                              {"id": "b", "text": "one two three four"}])
    >>> [c["text"] for c in cands], cut
    (['short', 'one two'], ['b'])
    """
    out, cut = [], []
    for c in candidates:
        text = c["text"]
        if len(text) > limits.max_passage_chars:
            head = text[: limits.max_passage_chars]
            space = head.rfind(" ")
            c = {**c, "text": head[:space] if space > 0 else head}
            cut.append(c.get("id"))
        out.append(c)
    return out, cut


def size_error(limits: Limits, query: str, candidates) -> JSONResponse | None:
    """:func:`size_message` as a 413 response, or None."""
    msg = size_message(limits, query, candidates)
    return None if msg is None else _json(413, msg)


def _json(status: int, message: str, headers: dict | None = None, **extra) -> JSONResponse:
    return JSONResponse({"message": message, **extra}, status_code=status, headers=headers or {})
