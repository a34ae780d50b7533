"""The server's settings: API keys from a variable and from a file (never shown in an error), bad settings refused
by name, and docs/serve.md's limits table listing every setting with its real default."""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.server import ServerSettings, read_api_keys
from r2r_agent.server.cli import add_arguments, server_settings

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def test_keys_from_a_variable_and_a_file(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_TEST_KEYS", "alpha, beta gamma")
    keys = tmp_path / "keys.txt"
    keys.write_text("# the team's keys\ndelta\n\n  epsilon  # the CI key\nalpha\n", encoding="utf-8")
    assert read_api_keys(env="R2R_TEST_KEYS") == ("alpha", "beta", "gamma")
    assert read_api_keys(file=keys) == ("delta", "epsilon", "alpha")
    assert read_api_keys(env="R2R_TEST_KEYS", file=keys) == ("alpha", "beta", "gamma", "delta", "epsilon")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    settings = server_settings(parser.parse_args(["--api-key-file", str(keys), "--max-documents", "10"]))
    assert settings.api_keys == ("delta", "epsilon", "alpha") and settings.max_documents == 10
    assert "delta" not in repr(settings)


def test_unusable_keys_are_refused_without_showing_them(tmp_path, monkeypatch):
    monkeypatch.setenv("R2R_EMPTY_KEYS", "  ")
    with pytest.raises(InvalidInputError, match="R2R_EMPTY_KEYS.*not set or empty"):
        read_api_keys(env="R2R_EMPTY_KEYS")
    comments = tmp_path / "comments.txt"
    comments.write_text("# nothing here\n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="holds no key"):
        read_api_keys(file=comments)
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"secret-\xff-key\n")
    with pytest.raises(InvalidInputError, match="cannot read it") as unreadable:
        read_api_keys(file=binary)
    assert "secret" not in str(unreadable.value)
    with pytest.raises(InvalidInputError, match="whitespace") as spaced:
        ServerSettings(api_keys=("two words",))
    assert "two words" not in str(spaced.value)


@pytest.mark.parametrize(("name", "value"), [("max_documents", 0), ("max_queue", -1), ("deadline_s", float("nan")),
                                             ("max_concurrency", 0), ("max_body_bytes", True),
                                             ("cors_origins", "http://one.example")])
def test_bad_settings_are_refused_by_name(name, value):
    with pytest.raises(InvalidInputError, match=name):
        ServerSettings(**{name: value})


def test_the_docs_list_every_limit_with_its_default():
    """docs/serve.md's settings table: one row per ServerSettings field, its flag and its real default."""
    text = DOCS.read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `--([a-z-]+)[^`]*` \| `([^`]*)` \|", text, flags=re.M))
    for item in dataclasses.fields(ServerSettings):
        if item.name == "api_keys":
            continue
        flag = item.name.replace("_", "-")
        assert flag in rows, f"docs/serve.md has no row for --{flag}"
        default, shown = item.default, rows[flag]
        if isinstance(default, bool):
            assert shown == ("on" if default else "off"), (flag, shown)
        elif default is None or default == ():
            assert shown == "none", (flag, shown)
        else:
            assert float(shown.replace(",", "")) == default, (flag, shown, default)
