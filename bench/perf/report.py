"""The table, printed and written to docs/benchmarks.md with the command,
the machine and the versions it was measured with."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from bench.perf.sizes import Sizes
from bench.perf.timing import Row

LIBRARIES = ("grpcio", "protobuf", "numpy", "onnxruntime", "scikit-learn", "pandas")
HEADER = ("figure", "measured", "baseline (same run)", "ratio", "target", "verdict")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> list[str]:
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in LIBRARIES)
    return [
        f"- machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} {platform.release()}",
        f"- Python {platform.python_version()}; {versions}",
    ]


def table(rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for r in rows:
        cells = (r.figure, r.measured, r.baseline, r.ratio, r.target, r.verdict)
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return lines


def document(rows: Sequence[Row], sizes: Sizes, command: str, elapsed_s: float, method: str) -> str:
    missed = [r.figure for r in rows if r.met is False]
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# ACE benchmarks",
        "",
        "Written by `make bench`; do not edit by hand. Each figure stands beside a baseline measured in the",
        "same run on the same machine: the ratios are what to quote, since absolute numbers drift on a",
        "shared machine.",
        "",
        f"- command: `{command}` ({sizes.name} sizes, {elapsed_s:.0f} s), {when}",
        *machine(),
        f"- targets met: {sum(r.met is True for r in rows)} of {sum(r.met is not None for r in rows)}",
        "",
        *table(rows),
        "",
    ]
    if missed:
        lines += ["Missed in this run: " + "; ".join(missed) + ".", ""]
    lines += [method.strip(), ""]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
