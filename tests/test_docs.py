"""docs/ against the code: the configuration page lists every flag every
service takes, with its environment variable, and every relative link in the
README and docs/ reaches a file and, when it names one, a heading there."""

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
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()
PARSERS = {
    "feature_store": feature_store.parser,
    "predictor": predictor.parser,
    "router": router.parser,
    "trainer": trainer.parser,
}
LINK = re.compile(r"\]\(([^)\s]+)\)")


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
        assert f"`{flag}`" in CONFIGURATION, f"{service}: {flag} missing from docs/configuration.md"
        assert env in CONFIGURATION, f"{service}: {env} missing from docs/configuration.md"


def anchors(page: Path) -> set[str]:
    """The ids GitHub gives the page's headings."""
    found, in_code = set(), False
    for line in page.read_text().splitlines():
        in_code ^= line.startswith("```")
        if line.startswith("#") and not in_code:
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_reaches_its_file_and_heading(page: Path):
    for target in LINK.findall(page.read_text()):
        if "://" in target:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target}"
        if anchor:
            assert anchor in anchors(linked), f"{page.name}: {target}"
