"""BEIR-format folders, the dataset registry and the light import of r2r_agent.evals."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import BeirLayoutError, known_datasets, load_beir_folder, load_dataset
from r2r_agent.evals import registry as registry_module
from r2r_agent.evals.candidates import write_candidates
from r2r_agent.evals.records import CandidateList, candidate


def _beir(root: Path) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "title": "Fleas", "text": "Fleas live 2-3 months."})
        + "\n"
        + json.dumps({"_id": "d2", "text": "Cats purr."})
        + "\n"
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "flea lifespan"})
        + "\n"
        + json.dumps({"_id": "q9", "text": "train only"})
        + "\n"
    )
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq9\td2\t1\n")
    return root


def test_beir_folder(tmp_path):
    data = load_beir_folder(_beir(tmp_path / "mine"))
    assert data.queries == {"q1": "flea lifespan"}  # only the split's judged queries
    assert data.qrels == {"q1": {"d1": 2, "d2": 0}}
    assert data.corpus["d1"].full_text == "Fleas\nFleas live 2-3 months."
    assert data.corpus["d2"].full_text == "Cats purr."
    assert load_beir_folder(tmp_path / "mine", split="train").queries == {"q9": "train only"}


def test_beir_gzip_and_errors(tmp_path):
    root = _beir(tmp_path / "b")
    raw = (root / "corpus.jsonl").read_bytes()
    (root / "corpus.jsonl").unlink()
    with pytest.raises(BeirLayoutError, match="no corpus.jsonl") as info:
        load_beir_folder(root)
    assert "queries.jsonl" in str(info.value)  # lists what is there
    with gzip.open(root / "corpus.jsonl.gz", "wb") as f:
        f.write(raw)
    assert len(load_beir_folder(root).corpus) == 2
    with pytest.raises(BeirLayoutError, match="Splits present: test, train"):
        load_beir_folder(root, split="dev")
    with pytest.raises(BeirLayoutError, match="not found"):
        load_beir_folder(tmp_path / "none")
    (root / "qrels" / "test.tsv").write_text("q1 d1 1\n")
    with pytest.raises(InvalidInputError, match="3 tab-separated"):
        load_beir_folder(root)


def test_unknown_dataset_lists_known_ones(tmp_path):
    with pytest.raises(InvalidInputError) as info:
        load_dataset("msmarco-dev", tmp_path)
    message = str(info.value)
    for name in ("dl19", "dl20", "dl19-splade", "dl20-splade", "bright-biology", "bright-theoremqa_theorems"):
        assert name in message
    # names are matched exactly, never by substring
    with pytest.raises(InvalidInputError, match="Unknown dataset 'dl19-bm25'"):
        load_dataset("dl19-bm25", tmp_path)


def test_known_datasets_and_duplicate_registration():
    names = known_datasets()
    assert names[:4] == ["dl19", "dl19-splade", "dl20", "dl20-splade"]
    assert len([n for n in names if n.startswith("bright-")]) == 12
    with pytest.raises(InvalidInputError, match="already registered"):
        registry_module.register_dataset("dl19", lambda d, b: None)  # type: ignore[arg-type,return-value]


def test_data_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("R2R_DATA_DIR", raising=False)
    with pytest.raises(InvalidInputError, match="R2R_DATA_DIR"):
        load_dataset("dl19")
    with pytest.raises(InvalidInputError, match="Data folder not found"):
        load_dataset("dl19", tmp_path / "nope")
    with pytest.raises(InvalidInputError, match="needs .*dl19.bm25.top100.jsonl.gz"):
        load_dataset("dl19", tmp_path)


def test_trec_dl_loader_on_a_tiny_folder(tmp_path, monkeypatch):
    dl = tmp_path / "trec-dl"
    dl.mkdir()
    write_candidates(
        dl / "dl20.bm25.top100.jsonl.gz",
        [CandidateList("q1", "flea lifespan", (candidate("d2", 3.0, "Cats."), candidate("d1", 2.0, "Fleas.")))],
    )
    (dl / "qrels.dl20-passage.txt").write_text("q1 0 d1 3\nq2 0 d5 1\n")
    monkeypatch.setenv("R2R_DATA_DIR", str(tmp_path))
    ds = load_dataset("dl20")
    assert ds.queries == {"q1": "flea lifespan"} and ds.has_texts
    assert ds.first_stage_run() == {"q1": {"d2": 3.0, "d1": 2.0}}
    assert ds.candidate_lists()[0].candidates[1].text == "Fleas."
    ev = ds.evaluate_first_stage(["RR@10"])
    assert ev["RR@10"] == 0.5 and ev.issues.missing_in_run == ("q2",)
    reranked = ds.evaluate({"q1": ["d1", "d2"]}, ["RR@10"])
    assert reranked["RR@10"] == 1.0


def test_import_is_light():
    code = (
        "import sys, r2r_agent.evals; "
        "heavy = ('torch', 'transformers', 'ir_measures', 'pyarrow', 'pandas', 'scipy'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
