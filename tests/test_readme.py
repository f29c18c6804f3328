"""The docs (the README and docs/*.md) list every flag every service takes,
with its environment variable, so they cannot fall behind the code."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from services.feature_store import config as feature_store
from services.predictor import config as predictor
from services.router import config as router
from services.trainer import config as trainer

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
DOCS = "\n".join([README, *(p.read_text() for p in sorted((ROOT / "docs").glob("*.md")))])
PARSERS = {
    "feature_store": feature_store.parser,
    "predictor": predictor.parser,
    "router": router.parser,
    "trainer": trainer.parser,
}


def settings(parser: argparse.ArgumentParser) -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            env = re.search(r"\[env (ACE_\w+);", action.help or "")
            assert env, f"{action.option_strings[0]} has no ACE_* variable"
            found.append((action.option_strings[0], env.group(1)))
    return found


@pytest.mark.parametrize("service", sorted(PARSERS))
def test_every_flag_and_variable_is_documented(service):
    for flag, env in settings(PARSERS[service]()):
        assert f"`{flag}`" in DOCS, f"{service}: {flag} missing from the docs"
        assert env in DOCS, f"{service}: {env} missing from the docs"


def test_the_two_commands_come_first():
    first_section = README.split("\n## ")[1]
    assert first_section.startswith("Two commands")
    assert "make run" in first_section and "make test" in first_section
