"""The README's claims that could drift: the two commands come first, its
services table names exactly the RPCs the contracts define, and it links
every file of docs/."""

from __future__ import annotations

import re
from pathlib import Path

from ace.v1 import feature_store_pb2, predictor_pb2, router_pb2, trainer_pb2

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
CONTRACTS = {
    "feature_store": feature_store_pb2.DESCRIPTOR.services_by_name["FeatureStore"],
    "predictor": predictor_pb2.DESCRIPTOR.services_by_name["Predictor"],
    "router": router_pb2.DESCRIPTOR.services_by_name["Router"],
    "trainer": trainer_pb2.DESCRIPTOR.services_by_name["Trainer"],
}


def section(title: str) -> str:
    return README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def services_table() -> dict[str, list[str]]:
    """service -> the RPCs its row names, from the rows of "The services"."""
    rows = [line for line in section("The services").splitlines() if line.startswith("| `")]
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)` \(\d+\)", cells[0])
        assert name, row
        table[name.group(1)] = re.findall(r"`(\w+)`", cells[-1])
    return table


def test_the_two_commands_come_first():
    first_section = README.split("\n## ")[1]
    assert first_section.startswith("Two commands")
    assert "make run" in first_section and "make test" in first_section


def test_the_services_table_names_every_rpc_of_the_contracts_and_no_other():
    table = services_table()
    assert sorted(table) == sorted(CONTRACTS)
    for service, rpcs in table.items():
        assert rpcs == [m.name for m in CONTRACTS[service].methods], service


def test_the_first_screen_says_where_each_topic_lives():
    first_screen = "\n".join(README.splitlines()[:45])
    linked = set(re.findall(r"\]\((docs/[\w.]+\.md)", first_screen))
    assert linked == {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
