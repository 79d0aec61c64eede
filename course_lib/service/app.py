"""The reranking service over HTTP: FastAPI, validated requests, limits, metrics, an optional API key.

Endpoints:

* ``POST /rerank`` — the course's shape ``{"query", "candidates": [{"id", "text", "score"?}], "top_k"?,
  "deadline_ms"?}``; the same path also answers TEI's (``texts``) and Jina/vLLM's (``documents``) shapes;
* ``POST /v1/rerank``, ``POST /v2/rerank`` — Cohere's shapes (:mod:`course_lib.service.compat` says what
  each compatible shape sends and gets, and which client versions it was matched against);
* ``POST /search`` — ``{"query", "k"?, "m"?, "deadline_ms"?}``: two-stage search over the first stage
  the app was given (``course-lib serve``: a persisted Chroma collection of the course corpus);
* ``GET /health`` — liveness (is the process up?): status, whether the model is warm, its fingerprint, queue depth;
* ``GET /ready`` — readiness (can it score yet?): 200 once the model is warm, 503 before (``course-lib serve``
  starts listening at once and warms up meanwhile, so a load balancer waits on ``/ready``);
* ``GET /metrics`` — Prometheus text: requests by endpoint and status, latency and batch-size histograms,
  pairs scored, cache hits/misses, queue depth and capacity, degraded and busy (503) answers, documents
  truncated (to the service's character limit, to what the model reads, or to a client's
  ``max_tokens_per_doc``); ``deploy/prometheus/`` holds alerting rules for them (``deploy/README.md``).

``/health``, ``/ready`` and ``/metrics`` are public on loopback and behind the key elsewhere;
``--ops-endpoints public`` (``public_ops``) makes them public everywhere, for a load balancer or a Prometheus
scraper.

Every answer names the model that ranked it (the ``X-Rerank-Model`` header; ``model`` in the course's shape). With a
``rollout`` (:mod:`course_lib.service.rollout`) a candidate model runs beside the primary: in shadow, or answering a
canary share.

Malformed input is a 422 naming the fields; too many candidates, more pairs than the queue can ever hold,
an over-long query or an over-large body is a 413 (a body is read and discarded first, up to eight times the
limit, so the client reads the 413 rather than a connection reset while still sending); a long passage is
cut and reported in ``truncated``, not refused (the course reranker reads only a pair's first 192 tokens, so
for ordinary text the cut cannot change a score); a full queue (or a model still warming up) is a 503
with ``Retry-After``; a missing or wrong API key (when one is set) is a 401 — on ``/health``, ``/ready``
and ``/metrics`` only when ``public_ops`` is off.  Every error is JSON with a ``message``.

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
from typing import Annotated

from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag

from course_lib.service.compat import (
    CohereBody,
    JinaBody,
    TEIBody,
    cohere_answer,
    document_texts,
    pick_shape,
    tei_answer,
)
from course_lib.service.core import (
    RequestError,
    RequestTooLarge,
    ScalableRerankingService,
    ServiceBusy,
)


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
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "query": "capital of France", "top_k": 1, "deadline_ms": 500,
        "candidates": [{"id": "a", "text": "Paris is the capital of France.", "score": 0.61},
                       {"id": "b", "text": "Bananas are yellow.", "score": 0.55}]}]})
    query: str = Field(min_length=1)
    candidates: list[Candidate]
    top_k: int | None = Field(default=10, ge=0)
    deadline_ms: float | None = Field(default=None, gt=0)


#: ``POST /rerank``'s body: the course's shape, TEI's or Jina's, told apart by :func:`~course_lib.service.compat.pick_shape`.
AnyRerankBody = Annotated[Annotated[RerankBody, Tag("course")] | Annotated[TEIBody, Tag("tei")]
                          | Annotated[JinaBody, Tag("jina")], Discriminator(pick_shape)]
_SHAPE_TAGS = {"course", "tei", "jina"}


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
        "capacity": Gauge("rerank_queue_capacity_pairs", "Pairs allowed to wait before requests are refused (503)",
                          registry=reg),
        "truncated": Counter("rerank_truncated_documents", "Passages cut: to the character limit, to what the model "
                             "reads or to a client's max_tokens_per_doc; by endpoint", ["endpoint"], registry=reg),
    }
    m["queue"].set_function(lambda: service.queued_pairs)
    m["capacity"].set_function(lambda: service.max_queue_pairs)

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
               limits: Limits = Limits(), warm_up: bool = True, background_warm_up: bool = False,
               public_ops: bool = False, model_name: str = "course-reranker", rollout=None) -> FastAPI:
    """The FastAPI app around a service.

    Args:
        service: the engine (None = a new one on the course reranker).
        search: the first stage ``/search`` uses (a :class:`course_lib.retrieval.FirstStage`, or anything
            with ``retrieve(query, k)``); None: no ``/search`` route (``course-lib serve`` passes the course
            corpus's, :func:`course_lib.service.server.course_first_stage`).
        api_key: when set, every request must send it (``X-API-Key`` or ``Authorization: Bearer``), except
            ``/health``, ``/ready`` and ``/metrics`` while ``public_ops`` is true.
        limits: sizes beyond which a request is refused with 413.
        warm_up: score a few pairs at startup (:meth:`ScalableRerankingService.warm_up`).
        background_warm_up: start serving at once and warm up meanwhile: ``/ready`` and scoring requests answer
            503 with ``Retry-After`` until the model is warm (what a load balancer's readiness check wants);
            False: startup waits for the warm-up.
        public_ops: whether ``/health``, ``/ready`` and ``/metrics`` answer without the key (load balancers
            and Prometheus scrapers send none); ``course-lib serve`` makes them public on loopback
            (:meth:`~course_lib.service.config.ServiceConfig.public_ops`).
        model_name: the name Cohere- and Jina-shaped answers report as their ``model``.
        rollout: a :class:`~course_lib.service.rollout.Rollout` — a candidate model in shadow or as a canary
            beside ``service`` (its primary; ``service`` may then be left out).  Every answer names the model
            that ranked it: ``model`` (and ``role``) in the course's shape, the ``X-Rerank-Model`` header in all.
    """
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    if rollout is not None:
        if service is not None and service is not rollout.primary:
            raise ValueError("service must be the rollout's primary engine (or left out)")
        service = rollout.primary
    service = service or ScalableRerankingService()
    registry, m = _metrics(service)
    if rollout is not None:
        rollout.register_metrics(registry)
    warm = rollout.warm_up if rollout is not None else service.warm_up
    state = {"ready": not warm_up, "warm_up": None}

    def warmed(future):
        if future.cancelled() or future.exception() is not None:  # stays not ready: /ready says 503
            state["failed"] = repr(future.exception()) if not future.cancelled() else "cancelled"
        else:
            state["ready"] = True

    @asynccontextmanager
    async def lifespan(app):
        if warm_up and background_warm_up:
            state["warm_up"] = asyncio.ensure_future(asyncio.to_thread(warm))
            state["warm_up"].add_done_callback(warmed)
        elif warm_up:
            await asyncio.to_thread(warm)  # first passes are slow; seeds the rate deadlines use
            state["ready"] = True
        yield
        if state["warm_up"] is not None:
            await asyncio.wait([state["warm_up"]])  # its failure, if any, is in state["failed"]
        # graceful: finish what is queued and in flight (and the shadow's comparisons)
        await (rollout.stop() if rollout is not None else service.stop())

    app = FastAPI(title="course_lib reranking service", lifespan=lifespan,
                  description="The course's cross-encoder reranker over HTTP: its own `/rerank` shape, and the "
                              "shapes Cohere (`/v1/rerank`, `/v2/rerank`), text-embeddings-inference and Jina/vLLM "
                              "(`/rerank`) clients send. See `course_lib.service.compat`.")
    install_errors(app)

    check_key = key_checker(api_key)
    ops = [] if public_ops else [Depends(check_key)]

    app.add_middleware(_Observe, metrics=m, max_body_bytes=limits.max_body_bytes)

    def check_sizes(query: str, candidates) -> None:
        err = size_message(limits, query, candidates)
        if err is not None:
            raise HTTPError(413, err)

    def check_ready() -> None:
        if state.get("failed"):
            raise HTTPError(503, f"the model failed to warm up: {state['failed']}")
        if not state["ready"]:
            raise HTTPError(503, "warming up: the model is not ready yet", headers={"Retry-After": "1"})

    async def run(req: dict) -> dict:
        check_ready()
        try:
            if rollout is not None:
                return await rollout.rerank(req)
            out = await service.rerank(req)
            out["model"] = service.fingerprint
            return out
        except RequestTooLarge as exc:
            raise HTTPError(413, str(exc)) from None
        except RequestError as exc:
            raise HTTPError(422, f"invalid request: {exc}") from None
        except ServiceBusy as exc:
            raise HTTPError(503, f"busy: {exc}", headers={"Retry-After": str(int(exc.retry_after_s))}) from None

    def count_truncated(endpoint: str, n: int) -> None:
        if n:
            m["truncated"].labels(endpoint).inc(n)

    async def course_rerank(body: RerankBody):
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
            count_truncated("/rerank", len(cut))
        return JSONResponse(out, headers={"X-Rerank-Model": out["model"]})  # plain JSON: no second encoding pass

    async def score_documents(endpoint: str, body, texts: list[str], *, max_tokens: int | None = None,
                              from_end: bool = False, refuse_long: bool = False,
                              count_tokens: bool = False) -> tuple[dict, list[int], str, int | None]:
        """Score a compatible request's texts on the engine, each cut to what the model reads of it (and to
        ``max_tokens``): ``(engine answer, indices of the texts cut, what they were cut to, tokens read or
        None)``."""
        check_sizes(body.query, texts)
        check_ready()
        pre, cut_chars = cut_long_passages(limits, [{"id": i, "text": t} for i, t in enumerate(texts)], from_end)

        def fit():
            fitted, cut = service.fit_to_window(body.query, [c["text"] for c in pre], max_tokens, from_end)
            return fitted, cut, (service.count_tokens(body.query, fitted) if count_tokens else None)

        try:
            fitted, cut, tokens = await asyncio.to_thread(fit)
        except RequestError as exc:
            raise HTTPError(422, f"invalid request: {exc}") from None
        truncated = sorted(set(cut_chars) | {i for i, c in enumerate(cut) if c})
        budget = f"max_tokens_per_doc={max_tokens}" if max_tokens is not None else "what the model reads beside the query"
        if refuse_long and truncated:
            raise HTTPError(413, f"text(s) {', '.join(map(str, truncated))} are longer than the model reads and "
                                 "truncate is false (send truncate: true, or leave it out, to have them cut)")
        count_truncated(endpoint, len(truncated))
        req = {"id": None, "query": body.query, "top_k": None,
               "candidates": [{"id": str(i), "text": t} for i, t in enumerate(fitted)]}
        if body.deadline_ms is not None:
            req["deadline_ms"] = body.deadline_ms
        return await run(req), truncated, budget, tokens

    def headers_for(out: dict, truncated: list[int]) -> dict:
        h = {"X-Rerank-Model": out["model"]}
        if out.get("degraded"):
            h["X-Rerank-Degraded"] = "true"
        if truncated:
            h["X-Truncated-Documents"] = ",".join(map(str, truncated))
        return h

    async def documents_rerank(endpoint: str, body: CohereBody, return_documents: bool):
        texts = document_texts(body.documents, body.rank_fields)
        out, truncated, budget, tokens = await score_documents(endpoint, body, texts, max_tokens=body.max_tokens_per_doc,
                                                               count_tokens=endpoint == "/rerank")
        answer = cohere_answer(out, body.documents, top_n=body.top_n, return_documents=return_documents,
                               endpoint=endpoint, model=body.model or model_name, truncated=truncated, budget=budget,
                               total_tokens=tokens)
        return JSONResponse(answer, headers=headers_for(out, truncated))

    async def tei_rerank(body: TEIBody):
        out, truncated, _, _ = await score_documents(
            "/rerank", body, body.texts, from_end=(body.truncation_direction or "right").lower() == "left",
            refuse_long=body.truncate is False)
        answer = tei_answer(out, body.texts, raw_scores=bool(body.raw_scores), return_text=bool(body.return_text),
                            truncated=truncated)
        return JSONResponse(answer, headers=headers_for(out, truncated))

    @app.post("/rerank", dependencies=[Depends(check_key)], summary="Rerank: the course's shape, TEI's or Jina's")
    async def rerank(body: Annotated[AnyRerankBody, Body()]):
        """The course's shape (``candidates``: ``{id, text, score?}``, answers with ids and the course's result
        fields), TEI's (``texts``: answers ``[{index, score, text?}]``) or Jina/vLLM's (``documents``: answers
        ``{results: [{index, relevance_score, document}]}``), told apart by which of those fields the body has."""
        if isinstance(body, RerankBody):
            return await course_rerank(body)
        if isinstance(body, TEIBody):
            return await tei_rerank(body)
        return await documents_rerank("/rerank", body, return_documents=body.return_documents is not False)

    @app.post("/v1/rerank", dependencies=[Depends(check_key)], summary="Rerank, Cohere v1 shape")
    async def rerank_v1(body: CohereBody):
        """Cohere's v1 rerank: ``{id, results: [{index, relevance_score, document?}], meta}``, best first."""
        return await documents_rerank("/v1/rerank", body, return_documents=bool(body.return_documents))

    @app.post("/v2/rerank", dependencies=[Depends(check_key)], summary="Rerank, Cohere v2 shape")
    async def rerank_v2(body: CohereBody):
        """Cohere's v2 rerank (``max_tokens_per_doc`` honoured): the same answer as v1."""
        return await documents_rerank("/v2/rerank", body, return_documents=bool(body.return_documents))

    async def search_route(body: SearchBody):
        check_sizes(body.query, [])
        check_ready()
        hits = await asyncio.to_thread(search.retrieve, body.query, body.k)  # off the event loop
        cands, _ = cut_long_passages(limits, [{"id": h["id"], "text": h["text"], "score": h["score"]} for h in hits])
        req = {"id": None, "query": body.query, "candidates": cands, "top_k": body.m}
        if body.deadline_ms is not None:
            req["deadline_ms"] = body.deadline_ms
        out = await run(req)
        out.pop("request_id", None)
        return JSONResponse(out, headers={"X-Rerank-Model": out["model"]})

    if search is not None:
        app.post("/search", dependencies=[Depends(check_key)], summary="Two-stage search")(search_route)

    @app.get("/health", dependencies=ops, summary="Liveness")
    async def health():
        """Liveness: 200 while the process serves HTTP, with whether the model is warm (``ready``)."""
        out = {"status": "ok", "ready": state["ready"], "model": service.fingerprint, "batching": service.batching,
               "queued_pairs": service.queued_pairs}
        if rollout is not None:
            out["rollout"] = {"mode": rollout.mode, "share": rollout.share, "candidate": rollout.candidate.fingerprint,
                              "candidate_queued_pairs": rollout.candidate.queued_pairs}
        return out

    @app.get("/ready", dependencies=ops, summary="Readiness", responses={503: {"description": "still warming up"}})
    async def ready():
        """Readiness: 200 once the model is warm, 503 with ``Retry-After`` before."""
        check_ready()
        return {"status": "ready", "model": service.fingerprint}

    @app.get("/metrics", dependencies=ops, summary="Prometheus metrics")
    async def metrics():
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.service = service
    app.state.rollout = rollout
    app.state.readiness = state
    return app


class _Observe:
    """Pure ASGI middleware: enforces the body-size limit (413) and records each request's status and
    latency (lighter per request than FastAPI's ``@app.middleware``, which matters under load).

    A body over the limit is read and discarded — up to ``drain_factor`` times the limit — before the 413 is
    sent with ``Connection: close``: a client still sending when the server answers sees its connection
    reset, not the 413 (Python's ``urllib``, ``requests`` and ``httpx`` all would).  Bodies beyond even that
    are answered at once.  Bodies sent without a ``Content-Length`` (chunked) are counted as they arrive."""

    ENDPOINTS = ("/rerank", "/v1/rerank", "/v2/rerank", "/search", "/health", "/ready")

    def __init__(self, app, metrics: dict, max_body_bytes: int, drain_factor: int = 8):
        self.app, self.m, self.max_body_bytes = app, metrics, max_body_bytes
        self.drain_bytes = drain_factor * max_body_bytes

    async def _read(self, receive, declared: int | None):
        """``(body, too_large)``: the whole body when within the limit; else None, after draining what may be
        drained."""
        if declared is not None and declared > self.drain_bytes:
            return None, True
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return None, False
            chunk = message.get("body", b"")
            size += len(chunk)
            more = message.get("more_body", False)
            if size <= self.max_body_bytes:
                parts.append(chunk)
            elif size > self.drain_bytes:
                return None, True
        if size > self.max_body_bytes:
            return None, True
        return b"".join(parts), False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        declared = int(length) if length.isdigit() else None
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            waits = headers.get(b"expect", b"").lower() == b"100-continue"  # the client sends only if told to
            if waits and declared is not None and declared > self.max_body_bytes:
                body, too_large = None, True  # answered before the body is sent: nothing to drain
            else:
                body, too_large = await self._read(receive, declared)
            if too_large:
                size = f"{declared} bytes" if declared is not None else "a chunked body"
                response = _json(413, f"request body of {size} exceeds the limit of {self.max_body_bytes} bytes",
                                 headers={"Connection": "close"})
                await response(scope, receive, send_status)
            elif body is not None:
                sent = False

                async def replay():
                    nonlocal sent
                    if not sent:
                        sent = True
                        return {"type": "http.request", "body": body, "more_body": False}
                    return await receive()

                await self.app(scope, replay, send_status)
            else:
                status["code"] = 499  # the client closed the connection while sending
        else:
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
        # a /rerank body's errors are located under its shape's tag ("course", "tei", "jina"): left out
        where = [".".join(str(p) for i, p in enumerate(e.get("loc", ())) if p != "body" and not (i == 1 and p in _SHAPE_TAGS))
                 or "body" for e in errors]
        detail = [{"field": w, "message": e.get("msg")} for w, e in zip(where, errors)]
        return _json(422, f"invalid request: {', '.join(sorted(set(where)))}", detail=detail)


def size_message(limits: Limits, query: str, candidates) -> str | None:
    """Why a request is too large (HTTP 413), or None."""
    if len(query) > limits.max_query_chars:
        return f"query of {len(query)} characters exceeds the limit of {limits.max_query_chars}"
    if len(candidates) > limits.max_candidates:
        return f"{len(candidates)} candidates exceed the limit of {limits.max_candidates} per request"
    return None


def cut_long_passages(limits: Limits, candidates: list[dict], from_end: bool = False) -> tuple[list[dict], list[str]]:
    """Candidates whose text is longer than ``limits.max_passage_chars`` cut there (at the last space before
    it, when there is one), as new dicts; returns ``(candidates, ids of those cut)``.  ``from_end`` keeps the
    text's last ``max_passage_chars`` characters instead (from the first space among them).

    >>> cands, cut = cut_long_passages(Limits(max_passage_chars=10), [{"id": "a", "text": "short"},
    ...                                                              {"id": "b", "text": "one two three four"}])
    >>> [c["text"] for c in cands], cut
    (['short', 'one two'], ['b'])
    """
    out, cut = [], []
    for c in candidates:
        text = c["text"]
        if len(text) > limits.max_passage_chars:
            if from_end:
                tail = text[-limits.max_passage_chars:]
                space = tail.find(" ")
                c = {**c, "text": tail[space + 1:] if 0 <= space < len(tail) - 1 else tail}
            else:
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
