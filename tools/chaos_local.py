"""`make chaos-local`: the chaos run of tools.chaos against local processes.
Starts the four services supervised (a killed one is restarted on its port,
as by a Deployment) on free ports in their own run directory, so a `make up`
of the user's is left alone; runs the five faults with local kills; stops
everything and exits non-zero if an invariant broke or a service did not
stop cleanly."""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from tools import chaos
from tools.constellation import Constellation
from tools.up import persistent_dirs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos_local", description=__doc__)
    parser.add_argument("--run-dir", type=Path, default=Path(".run/chaos-local"), help="wiped first")
    parser.add_argument("--budget-s", type=float, default=150.0, help="bound of the chaos run itself")
    args = parser.parse_args(argv)
    shutil.rmtree(args.run_dir, ignore_errors=True)
    constellation = Constellation(args.run_dir, extra_args=persistent_dirs(args.run_dir), supervise=True)
    with constellation:
        print("services: " + ", ".join(f"{n} {constellation.addr(n)}" for n in constellation.processes), flush=True)
        code = chaos.main(
            [
                "--faults=local",
                f"--run-dir={args.run_dir}",
                f"--budget-s={args.budget_s}",
                f"--admin-token-file={constellation.admin_token_file}",
                *(f"--{name.replace('_', '-')}-addr={constellation.addr(name)}" for name in constellation.processes),
            ]
        )
    restarts = {name: n for name, n in constellation.restarts.items() if n}
    print(f"supervisor restarts: {restarts}; exit codes at stop: {constellation.exit_codes}")
    if any(c != 0 for c in constellation.exit_codes.values()):
        print("a service did not stop cleanly")
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
