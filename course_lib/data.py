"""Datasets in BEIR layout, and the course's own small corpus.

A BEIR-layout directory holds::

    corpus.jsonl       {"_id": ..., "title": ..., "text": ...} per line
    queries.jsonl      {"_id": ..., "text": ...} per line
    qrels/<split>.tsv  header "query-id<TAB>corpus-id<TAB>score", then one judgement a line

Where the data lives is a setting, never a path baked into code: pass ``data_dir`` or set
``COURSE_DATA_DIR`` (the course's CI points it at ``../shared/datasets``).  A data directory
may be a dataset itself or a folder of datasets (``<dir>/scifact``).

Example
-------
>>> from course_lib.data import load_course_corpus
>>> ds = load_course_corpus()
>>> ds.name, len(ds.corpus) > 100, len(ds.queries) > 10
('course', True, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from course_lib.errors import CourseError
from course_lib import settings

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# md5 sums published by BEIR for its zips (used to verify downloads).
BEIR_MD5 = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
}


class DataError(CourseError, ValueError):
    """A dataset is missing or malformed; the message says which file and line."""


@dataclass
class Dataset:
    """A retrieval test collection held in memory.

    Attributes:
        name: dataset name (the directory's name).
        corpus: ``doc_id -> {"title": str, "text": str, **metadata}``.
        queries: ``query_id -> text`` (only queries that have judgements in ``split``).
        qrels: ``query_id -> {doc_id: graded relevance (int)}``; 0 means judged not relevant.
        split: which qrels file was read.
    """

    name: str
    corpus: dict[str, dict]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    split: str = "test"
    path: Path | None = field(default=None, repr=False)

    def doc_text(self, doc_id: str) -> str:
        """Title and text joined the way every course model sees a document."""
        return document_text(self.corpus[doc_id])

    def subset(self, query_ids) -> "Dataset":
        """The same corpus with only the given queries (and their qrels)."""
        qids = [q for q in query_ids if q in self.queries]
        return Dataset(
            self.name,
            self.corpus,
            {q: self.queries[q] for q in qids},
            {q: self.qrels[q] for q in qids if q in self.qrels},
            self.split,
            self.path,
        )

    def split_queries(self, fraction: float = 0.2, seed: int = 0) -> tuple["Dataset", "Dataset"]:
        """Split by query into (larger, smaller) parts, deterministically.

        Use it to keep evaluation queries out of training: split first, train on the
        first part, and measure only on the second.
        """
        qids = sorted(self.queries)
        random.Random(seed).shuffle(qids)
        n_small = max(1, int(round(len(qids) * fraction)))
        return self.subset(sorted(qids[n_small:])), self.subset(sorted(qids[:n_small]))


def judged_pairs(ds: "Dataset", query_ids=None) -> tuple[list[tuple[str, str]], list[int]]:
    """Every judged (query, document) pair of the given queries (default: all), with 0/1 labels.

    Label 1 = judged relevant (grade > 0).  Pairs come query by query, documents in id order, so
    the same call gives the same list everywhere (calibration fits, threshold choices).

    >>> ds = load_course_corpus()
    >>> pairs, labels = judged_pairs(ds, sorted(ds.queries)[:1])
    >>> len(pairs) == len(labels) > 0, set(labels) <= {0, 1}
    (True, True)
    """
    qids = sorted(ds.queries) if query_ids is None else list(query_ids)
    pairs, labels = [], []
    for q in qids:
        for d, g in sorted(ds.qrels.get(q, {}).items()):
            pairs.append((ds.queries[q], ds.doc_text(d)))
            labels.append(int(g > 0))
    return pairs, labels


def document_text(doc: dict) -> str:
    """``"title text"`` — BEIR's convention, so dense scores match published figures
    (all-MiniLM-L6-v2 on SciFact test: NDCG@10 0.645) — or just the text when the title is
    empty or already starts it."""
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    if not title or text.lower().startswith(title.lower().rstrip(" .")):
        return text
    return f"{title} {text}"


def default_data_dir() -> Path | None:
    """``$COURSE_DATA_DIR`` as a path, or None when unset."""
    return settings.data_dir()


def resolve_dataset_dir(name_or_path: str | os.PathLike | None = None, data_dir=None) -> Path:
    """Find a BEIR-layout directory.

    ``name_or_path`` may be a directory holding ``corpus.jsonl`` or a dataset name looked up
    under ``data_dir`` (default ``$COURSE_DATA_DIR``).
    """
    if name_or_path is not None:
        p = Path(name_or_path).expanduser()
        if (p / "corpus.jsonl").is_file():
            return p
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if base is None and name_or_path is not None and Path(name_or_path).exists():
        raise DataError(f"{name_or_path} has no corpus.jsonl: it is not a BEIR-layout dataset")
    if base is None:
        raise DataError(
            "No data directory is set. Pass data_dir=... or set COURSE_DATA_DIR to a folder of "
            "BEIR-layout datasets (for developers and CI: ../shared/datasets). "
            "Without one, use load_course_corpus() for the built-in corpus."
        )
    if name_or_path is None:
        if (base / "corpus.jsonl").is_file():
            return base
        raise DataError(f"{base} has no corpus.jsonl; name a dataset inside it (e.g. 'scifact')")
    candidate = base / str(name_or_path)
    if (candidate / "corpus.jsonl").is_file():
        return candidate
    if (base / "corpus.jsonl").is_file() and base.name == str(name_or_path):
        return base
    available = sorted(p.name for p in base.iterdir() if (p / "corpus.jsonl").is_file()) if base.is_dir() else []
    raise DataError(
        f"dataset {name_or_path!r} not found under {base} "
        f"(available: {', '.join(available) or 'none'}). "
        f"Online you can fetch BEIR datasets with course_lib.data.download_beir('{name_or_path}', '{base}')."
    )


def _read_jsonl(path: Path):
    if not path.is_file():
        raise DataError(f"missing file: {path}")
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if "_id" not in rec:
                raise DataError(f"{path}:{lineno}: record has no '_id'")
            yield lineno, rec


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (header optional) into ``{query_id: {doc_id: grade}}``."""
    if not path.is_file():
        raise DataError(f"missing qrels file: {path}")
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if lineno == 1 and parts[0].strip().lower() in {"query-id", "query_id", "qid"}:
                continue
            if len(parts) != 3:
                raise DataError(
                    f"{path}:{lineno}: expected 3 tab-separated fields "
                    f"(query-id, corpus-id, score), got {len(parts)}: {line[:80]!r}"
                )
            qid, did, score = (p.strip() for p in parts)
            try:
                grade = int(float(score))
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {score!r} is not a number") from None
            qrels.setdefault(qid, {})[did] = grade
    return qrels


def load_beir(name_or_path=None, split: str = "test", data_dir=None) -> Dataset:
    """Load a BEIR-layout dataset.

    Args:
        name_or_path: a dataset directory, or a name under ``data_dir``/``$COURSE_DATA_DIR``.
        split: which ``qrels/<split>.tsv`` to read.
        data_dir: folder of datasets (default ``$COURSE_DATA_DIR``).

    Raises:
        DataError: with the file and line of the problem, or how to set the data directory.
    """
    root = resolve_dataset_dir(name_or_path, data_dir)
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise DataError(f"{root} has no qrels for split {split!r} (available: {', '.join(splits) or 'none'})")
    corpus = {}
    for _, rec in _read_jsonl(root / "corpus.jsonl"):
        doc = {k: v for k, v in rec.items() if k != "_id"}
        doc.setdefault("title", "")
        doc.setdefault("text", "")
        corpus[str(rec["_id"])] = doc
    qrels = read_qrels(qrels_path)
    queries = {}
    for lineno, rec in _read_jsonl(root / "queries.jsonl"):
        qid = str(rec["_id"])
        if qid in qrels:
            if not isinstance(rec.get("text"), str):
                raise DataError(f"{root / 'queries.jsonl'}:{lineno}: query {qid} has no text")
            queries[qid] = rec["text"]
    missing = [q for q in qrels if q not in queries]
    if missing:
        raise DataError(f"{qrels_path}: {len(missing)} judged queries are not in queries.jsonl (e.g. {missing[0]})")
    return Dataset(root.name, corpus, queries, qrels, split, root)


def load_course_corpus() -> Dataset:
    """The course's built-in corpus: a few hundred passages written for the course.

    Topics span general knowledge, health, finance and regulation; queries carry graded
    labels (2 = answers the query, 1 = on topic, 0 = judged not relevant).  It ships inside
    the package, so every default demo runs offline in seconds.
    """
    base = resources.files("course_lib") / "corpus"
    corpus = {}
    with (base / "passages.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                corpus[rec.pop("_id")] = rec
    queries, qrels = {}, {}
    with (base / "queries.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                queries[rec["_id"]] = rec["text"]
                qrels[rec["_id"]] = {k: int(v) for k, v in rec["qrels"].items()}
    return Dataset("course", corpus, queries, qrels, "test", None)


def course_query_split(ds: Dataset | None = None) -> tuple[Dataset, Dataset]:
    """The course corpus split by query into ``(train, eval)`` halves: every other query in id order.

    The shipped course reranker saw the *train* half's judgements during training (see its model
    card); every course-corpus figure that speaks for the reranker is measured on the *eval* half.

    >>> train, held_out = course_query_split()
    >>> len(train.queries), len(held_out.queries), set(train.queries) & set(held_out.queries)
    (19, 18, set())
    """
    ds = ds if ds is not None else load_course_corpus()
    qids = sorted(ds.queries)
    return ds.subset(qids[::2]), ds.subset(qids[1::2])


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_beir(name: str, data_dir=None, url: str | None = None, md5: str | None = None) -> Path:
    """Download and unpack a public BEIR dataset zip into ``data_dir/<name>`` (online only).

    The zip is verified against BEIR's published md5 (or ``md5``) before unpacking;
    a dataset already present is returned without downloading.  Offline, the error says
    how to point the course at a local copy instead.
    """
    base = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    if base is None:
        base = Path.home() / ".cache" / "course_lib" / "datasets"
    target = base / name
    if (target / "corpus.jsonl").is_file():
        return target
    base.mkdir(parents=True, exist_ok=True)
    url = url or BEIR_URL.format(name=name)
    md5 = md5 or BEIR_MD5.get(name)
    zip_path = base / f"{name}.zip.part"
    try:
        with urllib.request.urlopen(url, timeout=30) as resp, zip_path.open("wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        zip_path.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} ({exc}). Offline? Copy a BEIR-layout folder to {target} "
            f"or set COURSE_DATA_DIR to a folder that holds '{name}/'."
        ) from None
    if md5 and _md5(zip_path) != md5:
        zip_path.unlink(missing_ok=True)
        raise DataError(f"checksum mismatch for {url}: the download is corrupt or not the published file")
    with zipfile.ZipFile(zip_path) as zf:
        for member in zf.namelist():
            dest = (base / member).resolve()
            if not str(dest).startswith(str(base.resolve())):
                raise DataError(f"refusing to unpack {member!r} outside {base}")
        zf.extractall(base)
    zip_path.unlink(missing_ok=True)
    if not (target / "corpus.jsonl").is_file():
        raise DataError(f"{url} did not contain {name}/corpus.jsonl")
    return target


# --- the learner's own data -> BEIR layout -------------------------------------------------------

_QUERY_COLS = ("query", "question")
_PASSAGE_COLS = ("passage", "text", "document")
_LABEL_COLS = ("label", "relevance", "grade")


def _pick(columns, names, what, path):
    for n in names:
        if n in columns:
            return n
    if what is None:
        return None
    raise DataError(f"{path}: no {what} column (expected one of {', '.join(names)}; found {', '.join(columns) or 'none'})")


def _read_rows(path: Path):
    import csv

    if path.suffix.lower() in {".jsonl", ".json"}:
        with path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise DataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                    if not isinstance(rec, dict):
                        raise DataError(f"{path}:{lineno}: expected an object per line")
                    yield lineno, {str(k).strip().lower(): v for k, v in rec.items()}
    elif path.suffix.lower() in {".csv", ".tsv"}:
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")
            for lineno, row in enumerate(reader, 2):
                yield lineno, {str(k).strip().lower(): v for k, v in row.items() if k is not None}
    else:
        raise DataError(f"{path}: give a .csv, .tsv or .jsonl file")


def convert_pairs(source, out_dir, split: str = "test", overwrite: bool = False) -> Dataset:
    """Turn a CSV/TSV/JSONL of (query, passage, optional label) rows into a BEIR-layout dataset.

    Columns (case-insensitive): ``query`` (or ``question``), ``passage`` (or ``text``/``document``),
    optional ``label`` (or ``relevance``/``grade``: an integer grade, 0 = judged not relevant; an empty
    cell leaves the pair unjudged), optional ``query_id``, ``doc_id`` and ``title``.  Without a label
    column every row counts as a relevant pair (grade 1).  Identical queries and identical passages
    get one id each (``q1``, ``q2``, ... and ``d1``, ``d2``, ... in order of first appearance, unless
    ids are given).  Writes ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` and returns
    the loaded dataset.

    >>> import tempfile, pathlib
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (tmp / "pairs.csv").write_text("query,passage,label\\nwhat is a stroke?,A stroke cuts blood to the brain.,2\\n"
    ...                                     "what is a stroke?,The breaststroke is a swimming style.,0\\n")
    >>> ds = convert_pairs(tmp / "pairs.csv", tmp / "mine")
    >>> ds.queries, ds.qrels
    ({'q1': 'what is a stroke?'}, {'q1': {'d1': 2, 'd2': 0}})
    """
    src, out = Path(source), Path(out_dir)
    if not src.is_file():
        raise DataError(f"no such file: {src}")
    if (out / "corpus.jsonl").exists() and not overwrite:
        raise DataError(f"{out} already holds a dataset (pass overwrite=True / --overwrite to replace it)")
    rows = list(_read_rows(src))
    if not rows:
        raise DataError(f"{src}: no rows")
    columns = sorted({k for _, r in rows for k in r})
    qcol = _pick(columns, _QUERY_COLS, "query", src)
    pcol = _pick(columns, _PASSAGE_COLS, "passage", src)
    lcol = _pick(columns, _LABEL_COLS, None, src)
    queries: dict[str, str] = {}
    corpus: dict[str, dict] = {}
    qid_of: dict[str, str] = {}
    did_of: dict[tuple[str, str], str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for lineno, r in rows:
        q, p = str(r.get(qcol) or "").strip(), str(r.get(pcol) or "").strip()
        if not q or not p:
            raise DataError(f"{src}:{lineno}: empty {'query' if not q else 'passage'}")
        title = str(r.get("title") or "").strip()
        qid = str(r.get("query_id") or "").strip() or qid_of.get(q) or f"q{len(qid_of) + 1}"
        if queries.get(qid, q) != q:
            raise DataError(f"{src}:{lineno}: query id {qid} is used for two different queries")
        qid_of.setdefault(q, qid)
        queries[qid] = q
        did = str(r.get("doc_id") or "").strip() or did_of.get((title, p)) or f"d{len(did_of) + 1}"
        if did in corpus and (corpus[did]["title"], corpus[did]["text"]) != (title, p):
            raise DataError(f"{src}:{lineno}: doc id {did} is used for two different passages")
        did_of.setdefault((title, p), did)
        corpus[did] = {"title": title, "text": p}
        raw = r.get(lcol) if lcol else 1
        if raw is None or str(raw).strip() == "":
            continue  # in the corpus, unjudged
        try:
            grade = int(float(raw))
        except (TypeError, ValueError):
            raise DataError(f"{src}:{lineno}: label {raw!r} is not a number") from None
        qrels.setdefault(qid, {})[did] = grade
    if not qrels:
        raise DataError(f"{src}: no labelled pair (every label cell is empty)")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    with (out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for did, doc in corpus.items():
            fh.write(json.dumps({"_id": did, **doc}, ensure_ascii=False) + "\n")
    with (out / "queries.jsonl").open("w", encoding="utf-8") as fh:
        for qid, text in queries.items():
            fh.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (out / "qrels" / f"{split}.tsv").open("w", encoding="utf-8") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for qid, judged in qrels.items():
            for did, g in judged.items():
                fh.write(f"{qid}\t{did}\t{g}\n")
    return load_beir(out, split)
