"""`python -m tools.train_job`: one training on the trainer service, as the
trainer CronJob runs it. Asks Trainer.Train for the feature store's recorded
history (or a synthetic one, to bootstrap a first model) with publish=true,
prints each stage, and exits 0 only when the version was trained and every
predictor replica accepted it."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import grpc

from ace.v1 import trainer_pb2, trainer_pb2_grpc
from services.common import admin, config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.train_job", description=__doc__)
    config.add_address(p, "trainer")
    config.option(
        p,
        "--duration-s",
        env="ACE_TRAIN_DURATION_S",
        cast=float,
        default=0.0,
        help="train on the last this many seconds of the feature store's history (0: all it holds)",
    )
    p.add_argument(
        "--synthetic-seed",
        type=int,
        default=None,
        help="train on the seeded synthetic history instead (a first model before any history exists)",
    )
    p.add_argument("--timeout-s", type=float, default=1800.0, help="deadline of the whole training")
    admin.add_client_option(p)
    return p


def request_of(args: argparse.Namespace) -> trainer_pb2.TrainRequest:
    if args.synthetic_seed is not None:
        return trainer_pb2.TrainRequest(synthetic=trainer_pb2.SyntheticSource(seed=args.synthetic_seed), publish=True)
    return trainer_pb2.TrainRequest(
        feature_store=trainer_pb2.FeatureStoreSource(duration_s=args.duration_s), publish=True
    )


def stage_name(stage: int) -> str:
    """A stage as printed: `history`, `fit`, ...; its number when this
    client's contract does not know it (a newer trainer)."""
    try:
        return trainer_pb2.TrainStage.Name(stage).lower()
    except ValueError:
        return str(stage)


def run(args: argparse.Namespace, echo: Callable[[str], None] = print) -> int:
    result: trainer_pb2.TrainResult | None = None
    with grpc.insecure_channel(args.trainer_addr) as channel:
        try:
            stub = trainer_pb2_grpc.TrainerStub(channel)
            call = admin.client_metadata(args.admin_token_file)
            for progress in stub.Train(request_of(args), timeout=args.timeout_s, metadata=call):
                echo(f"{stage_name(progress.stage):<8} {progress.message}")
                if progress.HasField("result"):
                    result = progress.result
        except grpc.RpcError as exc:
            echo(f"training failed: {exc.code().name}: {exc.details()}")
            return 1
    if result is None:
        echo("training failed: the trainer ended the stream without a result")
        return 1
    for replica in result.replicas:
        outcome = "accepted" if replica.published else f"refused: {replica.error}"
        echo(f"replica  {replica.address} {outcome}")
    if not result.published:
        echo(f"version {result.version} was trained but not published everywhere: {result.publish_error}")
        return 1
    echo(f"version {result.version} published to {len(result.replicas)} predictor replica(s)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run(parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
