"""The four real services, started in this process on port 0 and wired to
one another by address, exactly as they are wired in production."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from services.common import admin
from services.common.serving import RunningServer
from services.feature_store import config as fs_config
from services.feature_store import server as fs_server
from services.predictor import config as pr_config
from services.predictor import server as pr_server
from services.router import config as rt_config
from services.router import server as rt_server
from services.trainer import config as tr_config
from services.trainer import server as tr_server


@dataclass
class Fleet:
    servers: dict[str, RunningServer]
    channels: dict[str, grpc.Channel]
    # Call metadata with the admin token the predictor and trainer share.
    admin: tuple[tuple[str, str], ...]

    def addr(self, name: str) -> str:
        return f"127.0.0.1:{self.servers[name].port}"


def start_fleet(model_dir: Path) -> Fleet:
    local = ["--host", "127.0.0.1", "--port", "0"]
    token_file = model_dir.parent / "admin-token"
    if not token_file.exists():
        admin.write_token(token_file)
    guarded = [*local, "--admin-token-file", str(token_file)]
    servers: dict[str, RunningServer] = {}
    try:
        servers["feature_store"] = fs_server.start(fs_config.load(local))
        # No learning loop here, so nothing could prove a model: these tests
        # follow the forecast along the data path, and the trust gate is off.
        # `make run` (tests/tools/test_make_run.py) shows the gate at work.
        servers["predictor"] = pr_server.start(
            pr_config.load([*guarded, "--model-dir", str(model_dir), "--trust-gate", "off"])
        )
        fs_addr = f"127.0.0.1:{servers['feature_store'].port}"
        pr_addr = f"127.0.0.1:{servers['predictor'].port}"
        servers["router"] = rt_server.start(
            # The spikes here are single updates; tests/router/test_debounce.py runs the default.
            rt_config.load(
                [*local, "--feature-store-addr", fs_addr, "--predictor-addr", pr_addr, "--open-after-s", "0"]
            )
        )
        servers["trainer"] = tr_server.start(tr_config.load([*guarded, "--predictor-addr", pr_addr]))
    except BaseException:
        for running in servers.values():
            running.stop(0)
        raise
    channels = {name: grpc.insecure_channel(f"127.0.0.1:{s.port}") for name, s in servers.items()}
    return Fleet(servers, channels, admin.client_metadata(str(token_file)))


def stop_fleet(fleet: Fleet) -> None:
    for channel in fleet.channels.values():
        channel.close()
    for name in ("router", "trainer", "predictor", "feature_store"):
        fleet.servers[name].stop(1)
