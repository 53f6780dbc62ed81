"""`byoc demo`: the middleware, the CXone emulator and a demo platform in one process."""

from __future__ import annotations

import argparse
import asyncio

from byoc.cli._common import SubParsers, add
from byoc.settings import Settings


def cmd_demo(_settings: Settings, args: argparse.Namespace) -> int:
    from pathlib import Path

    from byoc.demo import DemoPorts, run_demo

    Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    ports = DemoPorts(
        middleware=args.port, emulator=args.emulator_port, platform=args.platform_port
    )
    try:
        return asyncio.run(run_demo(ports, Path(args.data_dir), once=args.once))
    except KeyboardInterrupt:
        return 0


def register(sub: SubParsers) -> None:
    demo = add(sub, "demo", cmd_demo, "run the middleware, the CXone emulator and a demo platform")
    demo.add_argument("--port", type=int, default=8080, help="middleware port (default: 8080)")
    demo.add_argument("--emulator-port", type=int, default=8090, help="default: 8090")
    demo.add_argument("--platform-port", type=int, default=8070, help="default: 8070")
    demo.add_argument("--data-dir", default="var/demo", help="SQLite and state (default: var/demo)")
    demo.add_argument("--once", action="store_true", help="play one exchange, then stop")
