"""`pyggy-bench`: run a workload against a running server and print a summary table."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import UTC, datetime

from pyggy.bench.native import native_send_poll, sdk_send_poll


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyggy-bench", description=__doc__)
    sub = p.add_subparsers(dest="mode", required=True)
    for name, help_text in (
        ("native-send-poll", "pinned producer then consumer with pyggy's lean native client"),
        ("sdk-send-poll", "pinned producer then consumer through the apache-iggy SDK"),
    ):
        m = sub.add_parser(name, help=help_text)
        m.add_argument("--address", default="127.0.0.1:8090", help="native TCP address")
        m.add_argument("--batches", type=int, default=200, help="batches to send")
        m.add_argument("--messages-per-batch", type=int, default=1000)
        m.add_argument("--message-size", type=int, default=1000, help="payload bytes")
        m.add_argument("--json", metavar="PATH", help="write the results as JSON")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    run = native_send_poll if args.mode == "native-send-poll" else sdk_send_poll
    results = run(args.address, args.batches, args.messages_per_batch, args.message_size)
    print(f"{'mode':<14}{'messages':>12}{'msgs/s':>14}{'MB/s':>10}")
    for r in results:
        print(f"{r.mode:<14}{r.messages:>12}{r.msgs_per_s:>14,.0f}{r.mb_per_s:>10.1f}")
    if args.json:
        doc = {"date": datetime.now(UTC).isoformat(), "machine": platform.platform(),
               "args": vars(args),
               "results": [{"mode": r.mode, "messages": r.messages, "bytes": r.bytes,
                            "seconds": r.seconds} for r in results]}
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
    sys.stdout.flush()
    if args.mode == "sdk-send-poll":
        # The SDK's native runtime can abort while the interpreter tears down after a run;
        # the results are written by now, so leave without running finalizers.
        os._exit(0)
