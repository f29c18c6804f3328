"""The predictor, run as a process that kills itself (SIGKILL, as `kill -9`)
just before the Nth file-system step of a publish: each fsync, rename and
replace the registry makes once a PublishModel has reached it. A test runs it
with N = 1, 2, ... to crash at every point of the write in turn.

python -m tests.reliability.crashing_predictor N [predictor flags...]
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from services.predictor import __main__ as predictor_main
from services.predictor.registry import Registry

STEPS = ("fsync", "rename", "replace")


def main() -> int:
    crash_at = int(sys.argv[1])
    seen = 0
    armed = False

    def step(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            nonlocal seen
            if armed:
                seen += 1
                if seen == crash_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)

        return wrapped

    for name in STEPS:
        setattr(os, name, step(getattr(os, name)))
    publish = Registry.publish

    def armed_publish(self: Registry, *args: Any, **kwargs: Any) -> Any:
        nonlocal armed
        armed = True
        return publish(self, *args, **kwargs)

    Registry.publish = armed_publish  # type: ignore[method-assign]
    return predictor_main.main(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
