"""The course pipeline in LangChain 1.x: Chroma recall, cross-encoder precision.

LangChain 1.x moved ``ContextualCompressionRetriever`` and the stock ``CrossEncoderReranker``
to ``langchain_classic``.  The stock compressor sorts by score but *drops* it; the course's
:class:`ScoredCrossEncoderReranker` keeps ``relevance_score`` (a probability) and
``rerank_logit`` in each returned document's metadata, so downstream code can threshold and
show confidence.

Example
-------
>>> from langchain_core.documents import Document
>>> from course_lib.integrations.langchain import ScoredCrossEncoderReranker
>>> comp = ScoredCrossEncoderReranker(top_n=1)
>>> docs = [Document(page_content="Paris is the capital of France."),
...         Document(page_content="Bananas are rich in potassium.")]
>>> out = comp.compress_documents(docs, "What is the capital of France?")
>>> out[0].page_content, 0.0 <= out[0].metadata["relevance_score"] <= 1.0
('Paris is the capital of France.', True)
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import Callbacks
from langchain_core.cross_encoders import BaseCrossEncoder
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field

from course_lib.scorers.base import Scorer, rank_results, validate_query, validate_rank_args
from course_lib.scorers.cross_encoder import CrossEncoderScorer


def _default_scorer():
    return CrossEncoderScorer()


class CourseCrossEncoder(BaseCrossEncoder):
    """LangChain's ``BaseCrossEncoder`` over a course :class:`~course_lib.rerank.Scorer`.

    ``score`` returns probabilities, so the stock ``CrossEncoderReranker`` works with it too.
    """

    def __init__(self, reranker: Scorer | None = None):
        if reranker is not None and not isinstance(reranker, Scorer):
            raise TypeError(f"reranker must be a course_lib.rerank.Scorer, got {type(reranker).__name__}")
        self.reranker = reranker if reranker is not None else _default_scorer()

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        logits = self.reranker.score_pairs(list(text_pairs))
        return [float(p) for p in self.reranker.probabilities(logits)]


class ScoredCrossEncoderReranker(BaseDocumentCompressor):
    """Rerank documents with a cross-encoder and keep the scores in their metadata.

    Returns copies of the top ``top_n`` documents, best first, each with
    ``metadata["relevance_score"]`` (probability), ``metadata["rerank_logit"]`` and
    ``metadata["rerank_position"]`` (from 0); documents below ``score_threshold`` are dropped.
    """

    reranker: Scorer = Field(default_factory=_default_scorer)
    top_n: int = 10
    score_threshold: float = 0.0

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        validate_query(query)
        validate_rank_args(self.top_n, self.score_threshold)
        docs = list(documents)
        if not docs:
            return []
        logits = self.reranker.score(query, [d.page_content for d in docs])
        ranked = rank_results([{"text": d.page_content} for d in docs], logits, self.reranker.probabilities(logits),
                              top_k=self.top_n, score_threshold=self.score_threshold)
        out = []
        for r in ranked:
            doc = docs[r["original_position"]]
            meta = {**doc.metadata, "relevance_score": r["relevance_score"], "rerank_logit": r["logit"],
                    "rerank_position": r["reranked_position"]}
            out.append(Document(page_content=doc.page_content, metadata=meta, id=doc.id))
        return out


def _course_embeddings(name: str | None = None, device: str | None = None):
    """``langchain_huggingface.HuggingFaceEmbeddings`` over the course's bi-encoder (offline default)."""
    from langchain_huggingface import HuggingFaceEmbeddings

    from course_lib.models import ENV_EMBEDDER, _resolve, bundled_embedder_path, pick_device

    path, _ = _resolve(name, ENV_EMBEDDER, bundled_embedder_path(), "embedder")
    return HuggingFaceEmbeddings(
        model_name=path,
        model_kwargs={"device": pick_device(device)},
        encode_kwargs={"normalize_embeddings": True},
    )


def create_production_reranking_pipeline(
    documents: Sequence[Document] | None = None,
    persist_directory: str = "./chroma_db",
    collection_name: str = "course_langchain",
    k: int = 50,
    top_n: int = 10,
    reranker=None,
    embeddings=None,
    score_threshold: float = 0.0,
) -> ContextualCompressionRetriever:
    """Chroma (top ``k``) -> cross-encoder (top ``top_n``) as one LangChain retriever.

    Args:
        documents: added to the store (by their ``id``, so re-adding replaces rather than
            duplicates); None reopens an existing store.
        reranker: a course :class:`~course_lib.rerank.Scorer` (default: the course reranker).
        embeddings: a LangChain ``Embeddings`` (default: :func:`_course_embeddings`).

    Use it with ``retriever.invoke("your question")``.
    """
    from langchain_chroma import Chroma

    vectorstore = Chroma(
        collection_name=collection_name,
        embedding_function=embeddings or _course_embeddings(),
        persist_directory=persist_directory,
        collection_configuration={"hnsw": {"space": "cosine"}},
    )
    if documents:
        docs = list(documents)
        ids = [d.id or str(i) for i, d in enumerate(docs)]
        vectorstore.add_documents(docs, ids=ids)
    base = vectorstore.as_retriever(search_type="similarity", search_kwargs={"k": k})
    compressor = ScoredCrossEncoderReranker(
        reranker=reranker if reranker is not None else _default_scorer(), top_n=top_n, score_threshold=score_threshold
    )
    return ContextualCompressionRetriever(base_compressor=compressor, base_retriever=base)
