"""Headless Chromium (Debian's `chromium`, which `make test` installs) for
the tests that look at a page as a person's browser renders it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.prometheus import binary

# Without the networking switches Chromium keeps trying to reach Google's
# hosts, which a closed network refuses many times a second.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def _run(url: str, workdir: Path, *extra: str) -> str:
    workdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [binary("chromium"), *FLAGS, f"--user-data-dir={workdir / 'profile'}", *extra, url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=workdir,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"chromium exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout


def dom(url: str, workdir: Path) -> str:
    """The page's DOM after Chromium loaded and laid it out."""
    return _run(url, workdir, "--dump-dom")


def screenshot(url: str, out: Path, workdir: Path, size: tuple[int, int] = (1280, 900)) -> Path:
    _run(url, workdir, f"--screenshot={out}", f"--window-size={size[0]},{size[1]}")
    return out
