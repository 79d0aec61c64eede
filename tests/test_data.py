import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from course_lib.data import (
    DataError,
    download_beir,
    load_beir,
    load_course_corpus,
    read_qrels,
)


def write_beir(root, qrels_lines=("q1\td1\t1",)):
    root.mkdir(parents=True)
    (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "hello"}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "hi"}) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(qrels_lines) + "\n")
    return root


def test_load_tiny_beir(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    assert ds.queries == {"q1": "hi"} and ds.qrels == {"q1": {"d1": 1}}
    assert ds.doc_text("d1") == "T hello"  # BEIR's "title text"


def test_malformed_qrels_line_names_file_and_line(tmp_path):
    root = write_beir(tmp_path / "bad", ("q1\td1\t1", "q1 d2 1"))
    with pytest.raises(DataError, match=r"test.tsv:3: expected 3 tab-separated fields"):
        load_beir(root)


def test_non_numeric_score(tmp_path):
    with pytest.raises(DataError, match="not a number"):
        read_qrels(write_beir(tmp_path / "b2", ("q1\td1\tyes",)) / "qrels" / "test.tsv")


def test_missing_data_dir_explains_setting(monkeypatch):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="COURSE_DATA_DIR"):
        load_beir("scifact")


def test_unknown_dataset_lists_available(tmp_path):
    write_beir(tmp_path / "tiny")
    with pytest.raises(DataError, match="available: tiny"):
        load_beir("nope", data_dir=tmp_path)


def test_missing_split(tmp_path):
    with pytest.raises(DataError, match="no qrels for split 'train'"):
        load_beir(write_beir(tmp_path / "t"), split="train")


def test_scifact_counts(shared_data):
    test = load_beir("scifact", "test", data_dir=shared_data)
    train = load_beir("scifact", "train", data_dir=shared_data)
    assert len(test.corpus) == 5183
    assert len(test.queries) == 300 and sum(len(v) for v in test.qrels.values()) == 339
    assert len(train.queries) == 809 and sum(len(v) for v in train.qrels.values()) == 919


def test_split_queries_is_disjoint_and_deterministic(shared_data):
    train = load_beir("scifact", "train", data_dir=shared_data)
    a, b = train.split_queries(0.2, seed=1)
    a2, b2 = train.split_queries(0.2, seed=1)
    assert set(a.queries).isdisjoint(b.queries)
    assert set(a.queries) | set(b.queries) == set(train.queries)
    assert sorted(b.queries) == sorted(b2.queries)


def test_course_corpus_is_well_formed():
    ds = load_course_corpus()
    assert len(ds.corpus) >= 200 and len(ds.queries) >= 30
    topics = {d["topic"] for d in ds.corpus.values()}
    assert {"general", "health", "finance", "regulation"} <= topics
    for qid, judged in ds.qrels.items():
        assert any(g == 2 for g in judged.values()), qid
        assert all(d in ds.corpus for d in judged)


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *a):
        pass


@pytest.fixture
def zip_server(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("mini/corpus.jsonl", json.dumps({"_id": "d1", "title": "", "text": "x"}) + "\n")
        zf.writestr("mini/queries.jsonl", json.dumps({"_id": "q1", "text": "y"}) + "\n")
        zf.writestr("mini/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    _Handler.payload = buf.getvalue()
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_port}/mini.zip", hashlib.md5(_Handler.payload).hexdigest()
    srv.shutdown()


def test_download_verifies_and_unpacks(zip_server, tmp_path):
    url, md5 = zip_server
    path = download_beir("mini", tmp_path, url=url, md5=md5)
    assert load_beir(path).qrels == {"q1": {"d1": 1}}


def test_download_rejects_bad_checksum(zip_server, tmp_path):
    url, _ = zip_server
    with pytest.raises(DataError, match="checksum mismatch"):
        download_beir("mini", tmp_path, url=url, md5="0" * 32)
    assert not (tmp_path / "mini").exists()


def test_download_offline_error_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match="COURSE_DATA_DIR"):
        download_beir("mini", tmp_path, url="http://127.0.0.1:9/none.zip")


def test_course_query_split_halves_are_disjoint_and_fixed():
    from course_lib.data import course_query_split

    train, held_out = course_query_split()
    assert set(train.queries).isdisjoint(held_out.queries)
    assert set(train.queries) | set(held_out.queries) == set(load_course_corpus().queries)
    assert sorted(held_out.queries)[:2] == ["q02", "q04"] and len(train.corpus) == len(held_out.corpus)
    assert set(held_out.qrels) == set(held_out.queries)


# --- course-lib convert: the learner's own data -> BEIR layout ---------------------------------------

def test_convert_csv_dedupes_and_keeps_grades(tmp_path):
    from course_lib.data import convert_pairs

    src = tmp_path / "mine.csv"
    src.write_text(
        "Question,Passage,Label\n"
        "how do vaccines work?,Vaccines train the immune system.,2\n"
        "how do vaccines work?,\"Bananas are yellow, mostly.\",0\n"
        "what is inflation?,Prices rise when money grows faster than output.,1\n"
        "what is inflation?,\"Bananas are yellow, mostly.\",\n",  # in the corpus, unjudged
        encoding="utf-8",
    )
    ds = convert_pairs(src, tmp_path / "out", split="dev")
    assert ds.split == "dev" and ds.queries == {"q1": "how do vaccines work?", "q2": "what is inflation?"}
    assert len(ds.corpus) == 3 and ds.corpus["d2"]["text"] == "Bananas are yellow, mostly."
    assert ds.qrels == {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 1}}
    reread = load_beir(tmp_path / "out", "dev")
    assert reread.qrels == ds.qrels and reread.corpus == ds.corpus


def test_convert_jsonl_without_labels_counts_pairs_relevant(tmp_path):
    from course_lib.data import convert_pairs

    src = tmp_path / "pairs.jsonl"
    src.write_text('{"query": "a?", "text": "A.", "doc_id": "x1", "title": "T"}\n\n{"query": "b?", "text": "B."}\n')
    ds = convert_pairs(src, tmp_path / "out")
    assert ds.qrels == {"q1": {"x1": 1}, "q2": {"d2": 1}}
    assert ds.corpus["x1"] == {"title": "T", "text": "A."} and ds.doc_text("x1").startswith("T")


@pytest.mark.parametrize("content,suffix,message", [
    ("q,passage\nx,y\n", ".csv", "no query column"),
    ("query,passage,label\nx,y,very\n", ".csv", "line 2|:2: label 'very'"),
    ("query,passage\nx,\n", ".csv", "empty passage"),
    ('{"query": "x", "passage": "y"\n', ".jsonl", "not valid JSON"),
    ("query,passage,label\nx,y,\n", ".csv", "no labelled pair"),
    ("query\tpassage\n", ".tsv", "no rows"),
    ("anything", ".txt", ".csv, .tsv or .jsonl"),
])
def test_convert_errors_say_what_and_where(tmp_path, content, suffix, message):
    from course_lib.data import convert_pairs

    src = tmp_path / f"bad{suffix}"
    src.write_text(content)
    with pytest.raises(DataError, match=message):
        convert_pairs(src, tmp_path / "out")


def test_convert_refuses_to_overwrite(tmp_path):
    from course_lib.data import convert_pairs

    src = tmp_path / "a.csv"
    src.write_text("query,passage\nx,y\n")
    convert_pairs(src, tmp_path / "out")
    with pytest.raises(DataError, match="already holds"):
        convert_pairs(src, tmp_path / "out")
    assert convert_pairs(src, tmp_path / "out", overwrite=True).qrels == {"q1": {"d1": 1}}
