"""BRIGHT: a synthetic local folder in the published xlangai/BRIGHT layout, excluded ids, the registry entries."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from r2r_agent.errors import InvalidInputError, MissingExtraError
from r2r_agent.evals import BrightLayoutError, ScoredDoc, evaluate, load_bright_folder, load_dataset, remove_excluded
from r2r_agent.evals import bright as bright_module
from r2r_agent.evals.bright import available_subsets, find_subset_files, load_bright_documents, load_bright_examples

FORMATS = ["jsonl", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_load_subset(make_bright_folder, bright_content, fmt):
    root = make_bright_folder(fmt)
    if fmt == "parquet":
        assert (root / "documents" / "biology-00000-of-00001.parquet").is_file()
    sub = load_bright_folder(root, "biology")
    assert [ex.qid for ex in sub.examples] == ["0", "1"]
    assert sub.examples[0].excluded_ids == frozenset()  # the source's ["N/A"] means none
    assert sub.excluded == {"1": frozenset({"torch/Memory Management_2_0.txt"})}
    assert sub.queries["1"] == "How is memory managed in PyTorch?"
    assert sub.qrels == {
        "0": {"insects/Phototaxis_0.txt": 1, "insects/Phototaxis_1.txt": 1},
        "1": {"torch/Memory Management_1_0.txt": 1},
    }
    assert sub.documents == {d["id"]: d["content"] for d in bright_content["documents"]}
    assert "misc/Newton%27s_laws_0.txt" in sub.documents  # ids are never URL-decoded
    long = load_bright_folder(root, "biology", long_documents=True)
    assert long.qrels["1"] == {"torch/Memory Management.txt": 1}
    assert set(long.documents) == {"insects/Phototaxis.txt", "torch/Memory Management.txt"}


def test_document_id_filter(make_bright_folder):
    root = make_bright_folder("jsonl")
    docs = load_bright_documents(root, "biology", ids={"insects/Phototaxis_1.txt", "not/there.txt"})
    assert docs == {"insects/Phototaxis_1.txt": "Moths navigate by the moon."}


def test_other_accepted_layouts(make_bright_folder, bright_content):
    root = make_bright_folder("jsonl")
    # gzipped jsonl, and the hub's parquet-converter layout <config>/<subset>/0000.parquet
    src = root / "examples" / "biology.jsonl"
    with gzip.open(root / "examples" / "pony.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(src.read_text())
    assert [ex.qid for ex in load_bright_examples(root, "pony")] == ["0", "1"]
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    (root / "documents" / "aops").mkdir()
    pq.write_table(pa.Table.from_pylist(bright_content["documents"][:2]), root / "documents" / "aops" / "0000.parquet")
    assert len(load_bright_documents(root, "aops")) == 2
    assert available_subsets(root, "documents") == ["biology", "aops"]


def test_missing_subset_lists_expected_files(make_bright_folder):
    root = make_bright_folder("jsonl", subsets=("biology", "pony"))
    with pytest.raises(BrightLayoutError) as info:
        load_bright_folder(root, "economics")
    message = str(info.value)
    assert "examples/economics-00000-of-00001.parquet" in message
    assert "examples/economics.jsonl" in message
    assert "Subsets present" in message and "biology, pony" in message
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, InvalidInputError)


def test_missing_documents_folder_and_missing_root(tmp_path, make_bright_folder):
    root = make_bright_folder("jsonl")
    shutil.rmtree(root / "documents")
    with pytest.raises(BrightLayoutError, match="does not exist"):
        load_bright_folder(root, "biology")
    with pytest.raises(BrightLayoutError, match="BRIGHT folder not found"):
        find_subset_files(tmp_path / "nowhere", "documents", "biology")


def test_unknown_subset_and_config(make_bright_folder):
    root = make_bright_folder("jsonl")
    with pytest.raises(InvalidInputError, match="use underscores") as info:
        load_bright_folder(root, "earth-science")
    assert "theoremqa_theorems" in str(info.value)
    with pytest.raises(InvalidInputError, match="Known configs"):
        find_subset_files(root, "gpt4_reason", "biology")


def test_rows_without_expected_fields(tmp_path):
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "biology.jsonl").write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(BrightLayoutError, match="lack the field"):
        load_bright_examples(tmp_path, "biology")


@pytest.mark.parametrize("fmt", FORMATS)
def test_parquet_without_readers_is_a_missing_extra(make_bright_folder, monkeypatch, fmt):
    root = make_bright_folder(fmt)
    monkeypatch.setattr(bright_module, "is_available", lambda name: False)
    if fmt == "jsonl":
        assert len(load_bright_folder(root, "biology").examples) == 2  # jsonl needs nothing extra
        return
    with pytest.raises(MissingExtraError, match=r'pip install "r2r-agent\[evals\]"'):
        load_bright_folder(root, "biology")


def test_parquet_via_pandas_when_no_pyarrow_import_path(make_bright_folder, monkeypatch):
    pytest.importorskip("pandas")
    root = make_bright_folder("parquet")
    monkeypatch.setattr(bright_module, "is_available", lambda name: name == "pandas")
    sub = load_bright_folder(root, "biology")
    assert sub.examples == load_bright_folder(make_bright_folder("jsonl", name="J"), "biology").examples


def test_remove_excluded_returns_new_objects():
    run = {"q": {"a": 1.0, "b": 2.0}, "r": {"a": 1.0}}
    out = remove_excluded(run, {"q": {"b"}})
    assert out == {"q": {"a": 1.0}, "r": {"a": 1.0}} and run["q"] == {"a": 1.0, "b": 2.0}
    docs = [ScoredDoc("q", "a", 1.0), ScoredDoc("q", "b", 2.0)]
    assert remove_excluded(docs, {"q": ["a"]}) == [ScoredDoc("q", "b", 2.0)]


def _write_shared_bright(root: Path, examples: list[dict], subset: str = "biology") -> Path:
    """A tiny shared-data folder: queries (shared schema), qrels with tabs, a ReasonIR-style run with %20."""
    bright = root / "bright"
    bright.mkdir(parents=True)
    rows = [
        dict(ex, qid=ex["id"], excluded_ids=[] if ex["excluded_ids"] == ["N/A"] else ex["excluded_ids"])
        for ex in examples
    ]
    (bright / f"{subset}.queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (bright / f"qrels.{subset}.txt").write_text(
        "".join(f"{r['qid']}\t0\t{g}\t1\n" for r in rows for g in r["gold_ids"])
    )
    (bright / f"{subset}.reasonir.top100.trec").write_text(
        "0 Q0 insects/Phototaxis_1.txt 1 0.9 reasonir\n"
        "0 Q0 misc/Newton%27s_laws_0.txt 2 0.8 reasonir\n"
        "1 Q0 torch/Memory%20Management_2_0.txt 1 0.9 reasonir\n"  # excluded for query 1
        "1 Q0 torch/Memory%20Management_1_0.txt 2 0.7 reasonir\n"
        "1 Q0 missing/from_corpus.txt 3 0.1 reasonir\n"
    )
    return root


def test_registry_bright_with_local_texts(tmp_path, make_bright_folder, bright_content, caplog):
    data = _write_shared_bright(tmp_path / "shared", bright_content["examples"])
    ds = load_dataset("bright-biology", data, bright_dir=make_bright_folder("jsonl"))
    assert ds.queries["0"] == "Why are insects attracted to light?"
    assert [c.id for c in ds.candidates["1"]] == ["torch/Memory Management_1_0.txt", "missing/from_corpus.txt"]
    assert ds.candidates["1"][0].text == "PyTorch uses a caching memory allocator."
    assert ds.candidates["0"][1].text == "Force equals mass times acceleration."
    assert ds.candidates["1"][1].text == "" and not ds.has_texts
    assert ds.missing_texts == {"missing/from_corpus.txt"}  # recorded beside the candidates
    assert "missing from the corpus" in caplog.text
    ev = ds.evaluate_first_stage(["nDCG@10", "RR@10"])
    assert ev.per_query["1"]["RR@10"] == 1.0  # the excluded id at rank 1 does not count
    assert ev.per_query["0"]["RR@10"] == 1.0
    # scoring a raw run with the dataset's excluded ids gives the same as removing them by hand
    raw = {"1": {"torch/Memory Management_2_0.txt": 5.0, "torch/Memory Management_1_0.txt": 1.0}}
    assert ds.evaluate(raw, ["RR@10"])["RR@10"] == 1.0
    assert evaluate(ds.qrels, raw, ["RR@10"])["RR@10"] == 0.5


def test_registry_bright_without_texts_and_missing_shared_files(tmp_path, bright_content):
    data = _write_shared_bright(tmp_path / "shared", bright_content["examples"])
    ds = load_dataset("bright-biology", data)
    assert all(c.text == "" and c.id in ds.missing_texts for cands in ds.candidates.values() for c in cands)
    assert "(no texts)" in ds.description
    with pytest.raises(BrightLayoutError, match="qrels.pony.txt"):
        load_dataset("bright-pony", data)
