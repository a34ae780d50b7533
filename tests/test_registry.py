"""The one name registry shared by systems, datasets and teachers."""

from __future__ import annotations

import pytest

from r2r_agent.errors import InvalidInputError
from r2r_agent.registry import Registry


def make() -> Registry[int]:
    registry = Registry[int]("dataset", hint="Pass beir:PATH for your own data.", forbidden=",")
    registry.register("dl19", 1, description="TREC DL 2019")
    registry.register("beir", 2, argument="PATH")
    return registry


def test_exact_names_and_arguments():
    registry = make()
    assert registry.parse("dl19")[0].value == 1
    entry, argument = registry.parse("beir:/data/sci:fact")
    assert (entry.value, argument) == (2, "/data/sci:fact")
    assert registry.usages() == ["dl19", "beir:PATH"]
    assert "dl19" in registry and "dl1" not in registry and len(registry) == 2


@pytest.mark.parametrize("text, message", [
    ("dl1", "Did you mean 'dl19'"),          # never a partial match, but a suggestion
    ("beir", "needs an argument: write beir:PATH"),
    ("beir:", "needs an argument"),
    ("dl19:x", "takes no argument"),
    ("msmarco", "Known: dl19, beir:PATH. Pass beir:PATH"),
])
def test_bad_names_say_what_is_accepted(text, message):
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")):
        make().parse(text)


@pytest.mark.parametrize("name", ["", "a:b", "a,b", "dl19"])
def test_bad_or_duplicate_registrations_are_refused(name):
    with pytest.raises(InvalidInputError):
        make().register(name, 3)
