"""`byoc doctor`: check the store and CXone (the checks live in `byoc.doctor`)."""

from __future__ import annotations

import argparse
import asyncio

from byoc.cli._common import SubParsers, add
from byoc.settings import Settings


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    from byoc.doctor import run_doctor

    return asyncio.run(run_doctor(settings, pings=args.pings))


def register(sub: SubParsers) -> None:
    doctor = add(sub, "doctor", cmd_doctor, "check the store and CXone; time calls to the DE API")
    doctor.add_argument("--pings", type=int, default=5, help="light DE calls to time (default: 5)")
