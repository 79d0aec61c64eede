"""The request and response shapes that real rerank clients send and read, on the course's engine.

Practitioners call rerankers through a few de-facto APIs; the tools they use speak those, pointed at any
base URL.  The course's service answers them with the same engine (micro-batching, cache, deadlines,
limits, metrics) as its own ``/rerank`` shape:

=====================  ===================================  ===============================================
endpoint               request                              answer
=====================  ===================================  ===============================================
``POST /v1/rerank``    Cohere v1: ``query``, ``documents``  ``{id, results: [{index, relevance_score,
                       (strings or ``{text, ...}``),        document?}], meta}``, best first, ``top_n`` of
                       ``top_n``, ``return_documents``,     them (all when absent)
                       ``rank_fields``, ``model``
``POST /v2/rerank``    Cohere v2: ``query``, ``documents``  the same
                       (strings), ``top_n``,
                       ``max_tokens_per_doc``, ``model``
``POST /rerank``       TEI: ``query``, ``texts``,           a list ``[{index, score, text?}]``, best first
                       ``raw_scores``, ``return_text``,
                       ``truncate``, ``truncation_direction``
``POST /rerank``       Jina / vLLM: ``query``,              ``{id, model, usage, results: [{index,
                       ``documents``, ``top_n``,            relevance_score, document}], meta}``
                       ``return_documents`` (default true)
=====================  ===================================  ===============================================

``/rerank`` picks the shape from the body: ``candidates`` is the course's own (unknown fields refused),
``texts`` is TEI's, ``documents`` is Jina's.  On the compatible shapes unknown fields are ignored and
``null`` is accepted wherever those clients send it (``max_tokens_per_doc: null``, ``top_n: null``).

Matched against (read in their code and documentation, December 2026):

* the ``cohere`` Python SDK 5.21 (``Client.rerank`` posts ``v1/rerank``, ``ClientV2.rerank`` posts
  ``v2/rerank`` with ``max_tokens_per_doc`` and ``priority``; responses are parsed leniently, extra
  fields allowed) and ``langchain-cohere`` 0.6 (``CohereRerank`` over ``ClientV2``, ``base_url``);
* Hugging Face text-embeddings-inference 1.x ``/rerank`` (``texts``, ``raw_scores`` default false,
  ``return_text`` default false, ``truncate`` default false, ``truncation_direction`` ``Right``/``Left``);
* Jina's rerank API and vLLM's Jina-compatible ``/rerank`` (``documents``, ``top_n``,
  ``return_documents`` default true; results carry ``document: {text}``; ``usage: {total_tokens}``);
  infinity's ``/rerank`` takes the same body.  Only the ``cohere`` SDK, ``langchain-cohere`` and plain
  ``httpx``/``requests``/``urllib`` are run against the service in the tests; the others were matched by
  reading their documentation.

Scores: ``relevance_score`` (Cohere, Jina) and TEI's ``score`` are the course reranker's calibrated
probability of relevance, in [0, 1]; TEI's ``raw_scores: true`` gives the logit.

**Long documents are cut, not refused.**  Each document is cut at a token boundary to what the model reads
of it beside the query — so its score is the whole document's — or to ``max_tokens_per_doc`` tokens when a
client asks for fewer (then the model reads less, as the client asked).  The answer flags what was cut
(``"truncated": true`` on the result, ``truncated`` indices and a ``meta.warnings`` line on Cohere/Jina
answers, an ``X-Truncated-Documents`` header on TEI's list) and ``/metrics`` counts it
(``rerank_truncated_documents_total``).  Without ``max_tokens_per_doc`` the cut falls where the model's own
truncation would, so the score is unchanged (``tests/service/test_compat.py`` checks it against the scorer,
long queries included).  (For BERT-style WordPiece tokenizers, such as the course reranker's; a scorer that
reads long documents in windows, ``long_documents="maxp"``, is sent them whole.)  TEI's ``truncate: false``,
sent explicitly, is honoured the way TEI honours it: a document longer than the model reads is a 413.  The
body-size limit stays, and its 413 reaches the client (see :mod:`course_lib.service.app`): ``urllib``,
``requests`` and ``httpx`` all read it in the tests.

**Degraded answers stay valid.**  When a request would miss its deadline (``deadline_ms`` in the body —
a course extension the other shapes may carry — or the server's default), the answer keeps the
documents in the order sent with a finite ``relevance_score`` of 0.0 for each (no document was scored),
a ``meta.warnings`` line saying so (Cohere and Jina; TEI's bare list gets the header only) and an
``X-Rerank-Degraded`` header; never ``null``, which clients that convert scores to floats fail on
(``test_a_degraded_answer_keeps_finite_scores_and_says_why`` in ``tests/service/test_compat.py``).  A full
queue is a 503 with ``Retry-After``, which the ``cohere`` SDK waits out and retries (its
``cohere/core/http_client.py`` retries a 429 or any 5xx, twice by default).

>>> pick_shape({"query": "q", "texts": ["a"]}), pick_shape({"query": "q", "documents": ["a"]})
('tei', 'jina')
>>> pick_shape({"query": "q", "candidates": []}), pick_shape({"query": "q"})
('course', 'course')
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["API_VERSION", "CohereBody", "JinaBody", "TEIBody", "cohere_answer", "document_texts", "pick_shape",
           "tei_answer"]

#: The Cohere API version each endpoint reports in ``meta.api_version``.
API_VERSION = {"/v1/rerank": "1", "/v2/rerank": "2", "/rerank": "2"}


def pick_shape(body: Any) -> str:
    """Which shape a ``/rerank`` body has: ``"course"`` (``candidates``, or nothing to tell by), ``"tei"``
    (``texts``) or ``"jina"`` (``documents``)."""
    if isinstance(body, dict) and "candidates" not in body:
        if "texts" in body:
            return "tei"
        if "documents" in body:
            return "jina"
    return "course"


class _Compatible(BaseModel):
    model_config = ConfigDict(extra="ignore")
    query: str = Field(min_length=1)
    model: str | None = None
    deadline_ms: float | None = Field(default=None, gt=0, description="course extension: answer by then, "
                                      "degraded if need be")


class CohereBody(_Compatible):
    """Cohere's rerank request (v1 and v2)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "course-reranker", "query": "What is the capital of France?", "top_n": 2,
        "documents": ["Paris is the capital of France.", "Bananas are yellow.", "Lyon is a city in France."]}]})
    documents: list[str | dict[str, Any]]
    top_n: int | None = Field(default=None, ge=1)
    return_documents: bool | None = None
    max_tokens_per_doc: int | None = Field(default=None, ge=1)
    rank_fields: list[str] | None = None

    @model_validator(mode="after")
    def _documents_have_text(self):
        document_texts(self.documents, self.rank_fields)
        return self


class JinaBody(CohereBody):
    """Jina's (and vLLM's, infinity's) rerank request: Cohere's fields; documents come back by default."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "model": "course-reranker", "query": "What is the capital of France?", "top_n": 2,
        "documents": ["Paris is the capital of France.", "Bananas are yellow."], "return_documents": True}]})


class TEIBody(_Compatible):
    """text-embeddings-inference's rerank request."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{
        "query": "What is the capital of France?", "texts": ["Paris is the capital of France.", "Bananas are yellow."],
        "raw_scores": False, "return_text": True}]})
    texts: list[str]
    raw_scores: bool | None = False
    return_text: bool | None = False
    truncate: bool | None = None
    truncation_direction: str | None = Field(default=None, pattern="^(?i:left|right)$")


def document_texts(documents: list, rank_fields: list[str] | None = None) -> list[str]:
    """The text the model reads of each Cohere-style document: a string as it is; an object's ``text`` — or,
    with ``rank_fields``, those fields as ``field: value`` lines, in that order (Cohere's reading of
    structured documents).  A ``ValueError`` names a document without text.

    >>> document_texts(["plain", {"text": "from an object", "id": 7}])
    ['plain', 'from an object']
    >>> document_texts([{"title": "Cats", "body": "Cats purr."}], rank_fields=["title", "body"])
    ['title: Cats\\nbody: Cats purr.']
    """
    out = []
    for i, d in enumerate(documents):
        if isinstance(d, str):
            out.append(d)
            continue
        if rank_fields:
            lines = [f"{f}: {d[f]}" for f in rank_fields if f in d and d[f] is not None]
            if lines:
                out.append("\n".join(lines))
                continue
        text = d.get("text")
        if not isinstance(text, str):
            why = f"document {i} has no 'text' string" + (" nor any of rank_fields" if rank_fields else "")
            raise ValueError(why)  # noqa: TRY004 - a ValueError, which pydantic reports as a 422
        out.append(text)
    return out


def _warnings(truncated: list[int], budget: str, degraded: str | None) -> list[str]:
    out = []
    if degraded:
        out.append(f"degraded: {degraded}; documents are in the order sent, unscored (relevance_score 0.0)")
    if truncated:
        out.append(f"{len(truncated)} document(s) truncated to {budget}: indices {', '.join(map(str, truncated))}")
    return out


def cohere_answer(engine_out: dict, documents: list, *, top_n: int | None, return_documents: bool, endpoint: str,
                  model: str, truncated: list[int], budget: str, total_tokens: int | None = None) -> dict:
    """The Cohere/Jina answer to one request from the engine's result (whose candidates' ids are the
    documents' positions): best first, ``top_n`` of them, finite scores even when degraded; on ``/rerank``
    (Jina's and vLLM's shape) also ``model`` and ``usage: {total_tokens}`` (the tokens the model read).

    >>> out = {"degraded": False, "results": [{"id": "1", "relevance_score": 0.9}, {"id": "0", "relevance_score": 0.2}]}
    >>> a = cohere_answer(out, ["x", "y"], top_n=1, return_documents=True, endpoint="/v2/rerank", model="m",
    ...                   truncated=[], budget="")
    >>> a["results"], a["meta"]["billed_units"]
    ([{'index': 1, 'relevance_score': 0.9, 'document': {'text': 'y'}}], {'search_units': 1})
    """
    degraded = engine_out.get("reason", "deadline") if engine_out.get("degraded") else None
    cut = set(truncated)
    results = []
    for r in engine_out["results"][: top_n if top_n is not None else None]:
        i = int(r["id"])
        item = {"index": i, "relevance_score": 0.0 if degraded else float(r["relevance_score"])}
        if return_documents:
            d = documents[i]
            item["document"] = {"text": d} if isinstance(d, str) else d
        if i in cut:
            item["truncated"] = True
        results.append(item)
    meta = {"api_version": {"version": API_VERSION[endpoint]},
            "billed_units": {"search_units": math.ceil(len(documents) / 100)}}
    warnings = _warnings(truncated, budget, degraded)
    if warnings:
        meta["warnings"] = warnings
    out = {"id": str(uuid.uuid4()), "results": results, "meta": meta}
    if endpoint == "/rerank":
        out["model"] = model
        if total_tokens is not None:
            out["usage"] = {"total_tokens": total_tokens}
    if truncated:
        out["truncated"] = truncated
    return out


def tei_answer(engine_out: dict, texts: list[str], *, raw_scores: bool, return_text: bool,
               truncated: list[int]) -> list[dict]:
    """TEI's answer: ``[{index, score, text?}]`` best first, every text; finite scores even when degraded.

    >>> out = {"degraded": False, "results": [{"id": "1", "relevance_score": 0.9, "logit": 2.2},
    ...                                        {"id": "0", "relevance_score": 0.2, "logit": -1.4}]}
    >>> tei_answer(out, ["x", "y"], raw_scores=True, return_text=False, truncated=[0])
    [{'index': 1, 'score': 2.2}, {'index': 0, 'score': -1.4, 'truncated': True}]
    """
    degraded = bool(engine_out.get("degraded"))
    cut = set(truncated)
    out = []
    for r in engine_out["results"]:
        i = int(r["id"])
        score = 0.0 if degraded else float(r["logit"] if raw_scores else r["relevance_score"])
        item = {"index": i, "score": score}
        if return_text:
            item["text"] = texts[i]
        if i in cut:
            item["truncated"] = True
        out.append(item)
    return out
