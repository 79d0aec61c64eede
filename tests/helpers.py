"""Test helpers: write small BEIR-layout datasets from the course corpus."""
import json


def write_course_as_beir(ds, root, n_queries=None, split="test"):
    root.mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as fh:
        for d, doc in ds.corpus.items():
            fh.write(json.dumps({"_id": d, "title": doc.get("title", ""), "text": doc["text"]}) + "\n")
    qids = sorted(ds.queries)[:n_queries]
    with (root / "queries.jsonl").open("w") as fh:
        for q in qids:
            fh.write(json.dumps({"_id": q, "text": ds.queries[q]}) + "\n")
    (root / "qrels").mkdir(exist_ok=True)
    with (root / "qrels" / f"{split}.tsv").open("w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for q in qids:
            for d, g in sorted(ds.qrels[q].items()):
                fh.write(f"{q}\t{d}\t{g}\n")
    return root
