"""First stages as ``r2r eval`` options: synthetic BEIR and BRIGHT folders written here, BM25 end to end through the
command, dense with a fake embedding function, reason-then-retrieve with a fake reasoner, caching and clear errors.
No model loads except in the test marked slow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_evals_beir_registry import _beir  # same folder (pytest puts it on sys.path)
from test_first_stage import FakeChromaFunction

from r2r_agent.cli import main
from r2r_agent.errors import InvalidInputError
from r2r_agent.evals import first_stage as first_stage_module
from r2r_agent.evals import first_stage_options
from r2r_agent.evals.registry import (
    Corpus,
    NoCandidatesError,
    NoCorpusError,
    corpus_datasets,
    known_datasets,
    load_corpus_dataset,
    load_dataset,
    parse_dataset,
)
from r2r_agent.evals.report import plot_name
from r2r_agent.evals.retrieval import FirstStageOptions, reasonings, retrieve_dataset, run_paths, stage_config
from r2r_agent.evals.trec import read_trec_run

pytest.importorskip("bm25s")

DOCS = {
    "d1": ("Fleas", "Adult fleas live two to three months on a host animal."),
    "d2": ("", "The Eiffel Tower is in Paris, the capital of France."),
    "d3": ("", "Photosynthesis turns sunlight, water and carbon dioxide into glucose."),
    "d4": ("Cats", "Cats sleep for most of the day; a cat may carry fleas."),
    "d5": ("", "Paris has many museums, among them the Louvre."),
    "d6": ("", "Dogs and cats can both get fleas from other animals."),
}
QUERIES = {"q1": "how long do fleas live", "q2": "capital of France", "q3": "how do plants make glucose",
           "q4": "zebra xylophone"}
QRELS = {"q1": {"d1": 2, "d6": 1}, "q2": {"d2": 1, "d5": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}}


def write_beir(root: Path) -> Path:
    """A small BEIR folder: six documents (two with titles), four judged queries (q4 shares no term)."""
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": d, "title": t, "text": x}) + "\n"
                                               for d, (t, x) in DOCS.items()), encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items()),
                                        encoding="utf-8")
    lines = [f"{q}\t{d}\t{r}" for q, docs in QRELS.items() for d, r in docs.items()]
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return root


@pytest.fixture(autouse=True)
def _no_shared_data(monkeypatch):
    # A first-stage run on a BEIR folder needs no shared data folder; keep the training check off the real one.
    monkeypatch.delenv("R2R_DATA_DIR", raising=False)


def _eval(*args: str) -> list[str]:
    return ["eval", *args, "--no-progress", "--no-plots"]


# --- registry: corpus datasets -------------------------------------------------------------------------------------


def test_beir_is_a_dataset_with_an_argument_and_a_corpus(tmp_path):
    assert "beir:PATH" in known_datasets() and "beir:PATH" in corpus_datasets()
    assert "dl19" not in corpus_datasets() and "bright-biology" in corpus_datasets()
    spec, arg = parse_dataset(f"beir:{tmp_path}")
    assert spec.name == "beir" and arg == str(tmp_path)
    with pytest.raises(InvalidInputError, match="needs an argument: write beir:PATH"):
        parse_dataset("beir")
    with pytest.raises(InvalidInputError, match="takes no argument"):
        parse_dataset("dl19:x")
    base, corpus = load_corpus_dataset(f"beir:{write_beir(tmp_path / 'mine')}")
    assert base.candidates == {} and base.queries == QUERIES and base.qrels == QRELS
    assert corpus.documents["d1"] == "Fleas\nAdult fleas live two to three months on a host animal."
    assert len(corpus) == 6 and "BEIR folder mine" in base.description


def test_corpus_fingerprint_follows_ids_and_texts():
    a = Corpus({"d1": "x", "d2": "y"})
    assert a.fingerprint == Corpus({"d2": "y", "d1": "x"}).fingerprint  # order does not matter
    assert a.fingerprint != Corpus({"d1": "x", "d2": "z"}).fingerprint
    assert a.fingerprint != Corpus({"d1": "x", "d3": "y"}).fingerprint


def test_datasets_without_corpus_or_without_candidates_are_clear_errors(tmp_path):
    with pytest.raises(NoCorpusError) as info:
        load_corpus_dataset("dl19", tmp_path)
    message = str(info.value)
    assert "has no corpus" in message and "beir:PATH" in message and "bright-<subset> with --bright-dir" in message
    with pytest.raises(NoCandidatesError, match="--first-stage bm25"):
        load_dataset(f"beir:{_beir(tmp_path / 'b')}")
    with pytest.raises(InvalidInputError, match="pass a local copy of xlangai/BRIGHT"):
        load_corpus_dataset("bright-biology")


def test_first_stage_options_validate_each_field():
    with pytest.raises(InvalidInputError, match="known first stages: bm25, dense, reason-then-retrieve"):
        FirstStageOptions("splade")
    with pytest.raises(InvalidInputError, match="depth must be an int >= 1"):
        FirstStageOptions("bm25", depth=0)
    with pytest.raises(InvalidInputError, match="index_dir is used by the 'dense' first stage only"):
        FirstStageOptions("bm25", index_dir="db")
    with pytest.raises(InvalidInputError, match="reasoner is used by 'reason-then-retrieve' only"):
        FirstStageOptions("dense", reasoner="student")
    with pytest.raises(InvalidInputError, match="reasoning_tokens must be an int >= 1"):
        FirstStageOptions("reason-then-retrieve", reasoning_tokens=0)


# --- BM25 through the command --------------------------------------------------------------------------------------


def test_cli_bm25_on_a_beir_folder_end_to_end(tmp_path, capsys, monkeypatch):
    beir = write_beir(tmp_path / "beir")
    report = tmp_path / "report"
    argv = _eval("--dataset", f"beir:{beir}", "--first-stage", "bm25", "--depth", "3", "--systems", "first-stage",
                 "--report", str(report))
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "bm25 top-3 for 4 queries (4 retrieved now)" in out

    runs = list((report / "first_stage").glob("*.trec"))
    assert len(runs) == 1 and runs[0].name.startswith("beir_") and ".bm25.top3." in runs[0].name
    run = {}
    for sd in read_trec_run(runs[0]):
        run.setdefault(sd.query_id, {})[sd.doc_id] = sd.score
    assert list(run) == ["q1", "q2", "q3"]  # q4 shares no term with the corpus: no candidates
    assert set(run["q1"]) == {"d1", "d4", "d6"} and max(run["q1"], key=run["q1"].get) == "d1"
    assert all(len(docs) <= 3 for docs in run.values())

    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    stage = data["settings"]["first_stage"]
    assert stage["name"] == "bm25" and stage["depth"] == 3
    (info,) = stage["runs"]
    assert info["run_file"] == str(runs[0]) and info["computed"] == 4 and info["empty"] == ["q4"]
    assert info["config"]["k1"] == 0.9 and info["index_seconds"] is not None
    first = data["runs"][0]
    assert first["system"] == "first-stage" and first["evaluation"]["issues"]["missing_in_run"] == ["q4"]
    # The report's figure is the TREC run file scored against the qrels.
    from r2r_agent.evals.metrics import evaluate

    assert first["evaluation"]["aggregates"]["nDCG@10"] == pytest.approx(evaluate(QRELS, run)["nDCG@10"])
    md = (report / "report.md").read_text(encoding="utf-8")
    assert "**First stage: `bm25`**" in md and "BM25 top-3 (retrieved)" in md and runs[0].name in md
    assert "--first-stage bm25 --depth 3" in md

    # A re-run builds no index and retrieves nothing: everything comes from the cached run.
    def refuse(*args, **kwargs):
        raise AssertionError("the corpus was indexed again")

    monkeypatch.setattr(first_stage_module.BM25FirstStage, "__init__", refuse)
    assert main(argv) == 0
    assert "(0 retrieved now)" in capsys.readouterr().out
    again = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert again["settings"]["first_stage"]["runs"][0]["index_seconds"] is None
    assert again["runs"][0]["evaluation"] == first["evaluation"] and again["runs"][0]["cost"]["computed"] == 0


def test_the_run_cache_is_keyed_by_corpus_and_depth(tmp_path):
    base, corpus = load_corpus_dataset(f"beir:{write_beir(tmp_path / 'beir')}")
    options = FirstStageOptions("bm25", depth=2)
    got = retrieve_dataset(base, corpus, options, cache_dir=tmp_path / "fs")
    assert got.run.computed == 4 and all(len(c) <= 2 for c in got.dataset.candidates.values())
    assert base.candidates == {}  # the given dataset is not changed
    assert got.dataset.candidates["q1"][0].text == corpus.documents["d1"]
    deeper = retrieve_dataset(base, corpus, FirstStageOptions("bm25", depth=5), cache_dir=tmp_path / "fs")
    assert deeper.run.computed == 4 and deeper.run.run_file != got.run.run_file
    edited = Corpus({**corpus.documents, "d7": "more fleas"})
    assert run_paths(tmp_path, base.name, edited, stage_config(options)) != run_paths(
        tmp_path, base.name, corpus, stage_config(options))
    # A changed query text is retrieved again; the others come from the cache.
    changed = type(base)(base.name, {**base.queries, "q2": "Louvre museums"}, {}, base.qrels)
    again = retrieve_dataset(changed, corpus, options, cache_dir=tmp_path / "fs")
    assert again.run.computed == 1 and again.dataset.candidates["q2"][0].id == "d5"
    # limit_queries retrieves only the first N queries.
    assert retrieve_dataset(base, corpus, options, limit_queries=2).run.queries == 2


def test_cli_bm25_on_a_bright_folder_removes_excluded_ids_before_the_cut(tmp_path, make_bright_folder, capsys):
    folder = make_bright_folder("jsonl")
    # Make the excluded document the best BM25 match of query 1: it must not take one of the `depth` places.
    docs = [json.loads(line) for line in (folder / "documents" / "biology.jsonl").read_text().splitlines()]
    for doc in docs:
        if doc["id"] == "torch/Memory Management_2_0.txt":
            doc["content"] = "How memory is managed in PyTorch: PyTorch memory management."
    (folder / "documents" / "biology.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    report = tmp_path / "report"
    assert main(_eval("--dataset", "bright-biology", "--bright-dir", str(folder), "--first-stage", "bm25",
                      "--depth", "1", "--systems", "first-stage", "--report", str(report))) == 0
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    (trec,) = (report / "first_stage").glob("*.trec")
    run = {sd.query_id: sd.doc_id for sd in read_trec_run(trec)}
    assert run["1"] == "torch/Memory Management_1_0.txt"  # the excluded, better match is gone, depth kept
    assert run["0"].startswith("insects/Phototaxis")
    per_query = data["runs"][0]["evaluation"]["per_query"]
    assert per_query["1"]["RR@10"] == 1.0
    assert "BRIGHT biology (5 documents" in data["datasets"][0]["description"]


# --- dense ---------------------------------------------------------------------------------------------------------


pytestmark_chroma = pytest.mark.filterwarnings("ignore:legacy embedding function config:DeprecationWarning")


@pytestmark_chroma
def test_dense_retrieval_with_a_fake_embedding_function_reuses_its_index(tmp_path):
    pytest.importorskip("chromadb")
    base, corpus = load_corpus_dataset(f"beir:{write_beir(tmp_path / 'beir')}")
    function = FakeChromaFunction()
    options = FirstStageOptions("dense", depth=2, index_dir=str(tmp_path / "index"))
    got = retrieve_dataset(base, corpus, options, embedding_function=function, cache_dir=tmp_path / "fs")
    assert got.run.config["model"] == "r2r-test-fake"
    assert got.dataset.candidates["q1"][0].id == "d1"  # the same keyword vector as the query
    assert len(got.dataset.candidates["q4"]) == 2  # dense always returns depth candidates
    embedded = sum(len(c) for c in function.calls)
    assert embedded >= len(corpus)
    # Another cache folder (no cached run) but the same index folder: no document is embedded again.
    function.calls.clear()
    retrieve_dataset(base, corpus, options, embedding_function=function, cache_dir=tmp_path / "fs2")
    assert all(len(c) == 1 for c in function.calls)  # only the queries


@pytestmark_chroma
def test_cli_dense_uses_the_bundled_minilm_function_and_the_index_dir(tmp_path, monkeypatch, capsys):
    pytest.importorskip("chromadb")
    from r2r_agent.integrations import chroma

    function = FakeChromaFunction()
    monkeypatch.setattr(chroma, "minilm_embedding_function", lambda **kwargs: function)
    beir = write_beir(tmp_path / "beir")
    argv = _eval("--dataset", f"beir:{beir}", "--first-stage", "dense", "--index-dir", str(tmp_path / "db"),
                 "--depth", "4", "--systems", "first-stage", "--report", str(tmp_path / "report"))
    assert main(argv) == 0
    assert (tmp_path / "db" / "chroma.sqlite3").is_file()
    data = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    assert data["settings"]["first_stage"]["runs"][0]["config"]["model"] == "all-MiniLM-L6-v2"
    assert data["runs"][0]["evaluation"]["n_queries"] == 4
    assert "dense MiniLM top-4 (retrieved)" in data["datasets"][0]["description"]


# --- reason-then-retrieve ------------------------------------------------------------------------------------------


def test_cli_reason_then_retrieve_with_a_fake_reasoner(tmp_path, monkeypatch, capsys):
    calls: list[str] = []

    def fake_reasoner(reasoner, max_new_tokens, *, pool=None):
        assert reasoner is None and max_new_tokens == 16

        def write(query: str) -> str:
            calls.append(query)
            return "Parasites such as fleas live on cats." if "parasite" in query else ""

        return write

    monkeypatch.setattr(first_stage_options, "reasoner_writer", fake_reasoner)
    # stage_config asks torch for the default student's dtype; the fake needs no model.
    monkeypatch.setattr("r2r_agent.modeling.resolve_dtype", lambda name: "torch.float32")
    beir = write_beir(tmp_path / "beir")
    queries = beir / "queries.jsonl"
    queries.write_text(queries.read_text().replace("how long do fleas live", "parasite lifespan"))
    argv = _eval("--dataset", f"beir:{beir}", "--first-stage", "reason-then-retrieve", "--reasoning-tokens", "16",
                 "--systems", "first-stage", "--report", str(tmp_path / "report"))
    assert main(argv) == 0
    assert sorted(calls) == sorted(["parasite lifespan", "capital of France", "how do plants make glucose",
                                    "zebra xylophone"])
    data = json.loads((tmp_path / "report" / "report.json").read_text(encoding="utf-8"))
    (info,) = data["settings"]["first_stage"]["runs"]
    assert info["config"]["reasoner"] == "student (float32)" and info["config"]["reasoning_tokens"] == 16
    # The bare query shares no term with the corpus; the reasoning made d1 retrievable.
    assert data["runs"][0]["evaluation"]["per_query"]["q1"]["RR@10"] == 1.0
    from r2r_agent.evals.retrieval import FirstStageRun

    run = FirstStageRun(**{k: v for k, v in info.items() if k != "seconds_per_query"})
    assert reasonings(run)["q1"] == "Parasites such as fleas live on cats."
    calls.clear()
    assert main(argv) == 0  # cached: the reasoner writes nothing
    assert calls == []


def test_reasoner_must_be_student_or_a_folder(tmp_path):
    with pytest.raises(InvalidInputError, match="'student' .* or a local causal-LM folder"):
        first_stage_options.reasoner_writer(str(tmp_path / "nope"), 8)


# --- clear errors from the command ---------------------------------------------------------------------------------


def test_cli_first_stage_errors(tmp_path, capsys):
    beir = str(write_beir(tmp_path / "beir"))
    report = ["--report", str(tmp_path / "r"), "--systems", "first-stage"]
    assert main(_eval("--dataset", "dl19", "--first-stage", "bm25", *report)) == 2
    err = capsys.readouterr().err
    assert "'dl19' has no corpus" in err and "beir:PATH" in err and "--bright-dir" in err
    assert main(_eval("--dataset", f"beir:{beir}", *report)) == 2
    assert "has a corpus but no candidates" in capsys.readouterr().err
    assert main(_eval("--dataset", f"beir:{beir}", "--depth", "5", *report)) == 2
    assert "--depth is a first-stage option" in capsys.readouterr().err
    assert main(_eval("--dataset", f"beir:{beir}", "--first-stage", "bm25", "--index-dir", "db", *report)) == 2
    assert "index_dir is used by the 'dense' first stage only" in capsys.readouterr().err
    assert main(_eval("--dataset", "bright-biology", "--first-stage", "bm25", *report)) == 2
    assert "pass a local copy of xlangai/BRIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_eval("--dataset", f"beir:{beir}", "--first-stage", "splade", *report))
    assert "invalid choice: 'splade'" in capsys.readouterr().err


def test_plots_of_a_beir_dataset_get_safe_file_names(tmp_path):
    pytest.importorskip("matplotlib")
    beir = write_beir(tmp_path / "my beir")
    assert main(["eval", "--dataset", f"beir:{beir}", "--first-stage", "bm25", "--systems", "first-stage",
                 "--report", str(tmp_path / "r"), "--no-progress"]) == 0
    expected = plot_name("deltas", f"beir:{beir}")
    assert "/" not in expected and ":" not in expected and (tmp_path / "r" / expected).is_file()
    assert f"]({expected})" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")


@pytest.mark.slow
@pytestmark_chroma
def test_cli_dense_with_the_bundled_minilm(tmp_path):
    pytest.importorskip("chromadb")
    beir = write_beir(tmp_path / "beir")
    assert main(_eval("--dataset", f"beir:{beir}", "--first-stage", "dense", "--depth", "3", "--systems",
                      "first-stage", "--report", str(tmp_path / "r"))) == 0
    data = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    per_query = data["runs"][0]["evaluation"]["per_query"]
    assert per_query["q1"]["RR@10"] == 1.0 and per_query["q3"]["RR@10"] == 1.0
    assert (tmp_path / "r" / "first_stage" / "dense-index").is_dir()
