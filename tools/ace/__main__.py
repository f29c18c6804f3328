"""The operator's command line: what ACE sees, from the running services.

    python -m tools.ace risk                 # capacity risks over the horizon, riskiest first
    python -m tools.ace table                # the routing table: breakers, risks, latency
    python -m tools.ace models               # model versions, held-out and live error
    python -m tools.ace explain DECISION_ID  # one decision and its backend now

--json prints the services' answers as JSON (protobuf field names) for
scripts. Addresses come from --router-addr / --predictor-addr or ACE_ROUTER_ADDR
/ ACE_PREDICTOR_ADDR, defaulting to the local ports `make up` uses."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import grpc
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from ace.v1 import predictor_pb2, predictor_pb2_grpc, router_pb2, router_pb2_grpc
from services.common import config, tls
from tools.ace import render


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m tools.ace", description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    config.add_address(p, "router")
    config.add_address(p, "predictor")
    config.option(p, "--tls-ca-file", env="ACE_TLS_CA_FILE", cast=str, default="", help="PEM CA: call over TLS")
    config.option(p, "--timeout-s", env="ACE_CLI_TIMEOUT_S", cast=float, default=5.0, help="deadline of each call")
    p.add_argument("--json", action="store_true", help="print the answers as JSON, for scripts")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("risk", help="capacity risks over the forecast horizon, riskiest first")
    commands.add_parser("table", help="the routing table: each backend's breaker, risk and latency")
    commands.add_parser("models", help="model versions with their held-out and live error")
    explain = commands.add_parser("explain", help="one decision (its decision_id) and its backend now")
    explain.add_argument("decision_id")
    return p


def _json(message: Message) -> object:
    return MessageToDict(message, preserving_proto_field_name=True)


def run(args: argparse.Namespace, out: list[str]) -> None:
    settings = tls.load("", "", args.tls_ca_file)
    timeout = args.timeout_s
    if args.command == "models":
        with tls.channel(args.predictor_addr, settings) as channel:
            predictor = predictor_pb2_grpc.PredictorStub(channel)
            listed = predictor.ListModels(predictor_pb2.ListModelsRequest(), timeout=timeout)
            try:
                health = predictor.GetModelHealth(predictor_pb2.GetModelHealthRequest(), timeout=timeout)
            except grpc.RpcError:
                health = None  # the versions alone still answer the question
        if args.json:
            out.append(json.dumps({"models": _json(listed), "health": _json(health) if health else None}, indent=2))
        else:
            out.append(render.models(listed, health))
        return
    with tls.channel(args.router_addr, settings) as channel:
        router = router_pb2_grpc.RouterStub(channel)
        answer: Message
        if args.command == "risk":
            report = router.GetRiskReport(router_pb2.GetRiskReportRequest(), timeout=timeout)
            answer, text = report, render.risk(report)
        elif args.command == "table":
            table = router.GetRoutingTable(router_pb2.GetRoutingTableRequest(), timeout=timeout)
            answer, text = table, render.routing_table(table)
        else:
            request = router_pb2.ExplainDecisionRequest(decision_id=args.decision_id)
            record = router.ExplainDecision(request, timeout=timeout)
            answer, text = record, render.explain(record)
    out.append(json.dumps(_json(answer), indent=2) if args.json else text)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    out: list[str] = []
    try:
        run(args, out)
    except grpc.RpcError as exc:
        service = "predictor" if args.command == "models" else "router"
        address = args.predictor_addr if service == "predictor" else args.router_addr
        print(
            f"ace {args.command}: the {service} at {address} answered {exc.code().name}: {exc.details()}",
            file=sys.stderr,
        )
        return 1
    except tls.TlsError as exc:
        print(f"ace: {exc}", file=sys.stderr)
        return 2
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
