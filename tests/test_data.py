import hashlib
import http.server
import io
import json
import threading
import zipfile

import pytest

from course_lib.data import DataError, download_beir, load_beir, load_course_corpus, read_qrels


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
