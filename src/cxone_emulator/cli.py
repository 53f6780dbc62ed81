"""`cxone-emulator serve ...`: run the emulator with uvicorn."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Sequence

from cxone_emulator.config import (
    ChannelConfig,
    EmulatorConfig,
    IntegrationConfig,
    parse_message_ids,
)

_INTEGRATION_KEYS = (
    "id",
    "box_url",
    "authorization_url",
    "client_id",
    "client_secret",
    "reply_style",
    "name",
    "action_url",
    "message_ids",
)
_INTEGRATION_REQUIRED = ("id", "box_url", "authorization_url", "client_id", "client_secret")
_CHANNEL_KEYS = ("id", "integration", "name")


class SpecError(ValueError):
    pass


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows real defaults; flags whose help already explains their default are left alone."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def parse_spec(text: str, allowed: Sequence[str], required: Sequence[str]) -> dict[str, str]:
    """Parse `key=value,key=value`; values may not contain commas."""
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise SpecError(f"{part!r} is not key=value")
        if key not in allowed:
            raise SpecError(f"unknown key {key!r} (allowed: {', '.join(allowed)})")
        values[key] = value.strip()
    missing = [key for key in required if not values.get(key)]
    if missing:
        raise SpecError(f"missing {', '.join(missing)}")
    return values


def parse_integration(text: str) -> IntegrationConfig:
    values = parse_spec(text, _INTEGRATION_KEYS, _INTEGRATION_REQUIRED)
    style = values.get("reply_style", "dfo3")
    if style not in ("legacy", "dfo3"):
        raise SpecError("reply_style must be legacy or dfo3")
    try:
        message_ids = parse_message_ids(values.get("message_ids") or "body")
    except ValueError as exc:
        raise SpecError(str(exc)) from None
    return IntegrationConfig(
        id=values["id"],
        box_url=values["box_url"],
        authorization_url=values["authorization_url"],
        client_id=values["client_id"],
        client_secret=values["client_secret"],
        reply_style="legacy" if style == "legacy" else "dfo3",
        name=values.get("name") or "BYOC",
        action_url=values.get("action_url") or None,
        message_ids=message_ids,
    )


def parse_channel(text: str) -> ChannelConfig:
    values = parse_spec(text, _CHANNEL_KEYS, ("id", "integration"))
    return ChannelConfig(
        id=values["id"], integration_id=values["integration"], name=values.get("name") or "Chat"
    )


def build_parser() -> argparse.ArgumentParser:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(
        prog="cxone-emulator",
        description="A stand-in for NICE CXone Digital Engagement over real HTTP.",
        formatter_class=_HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the emulator",
        formatter_class=_HelpFormatter,
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    serve.add_argument("--port", type=int, default=8090, help="TCP port")
    serve.add_argument("--base-path", default=defaults.base_path, help="DE API base path")
    serve.add_argument(
        "--public-url",
        default=None,
        help="external URL of the emulator (default: derived from each request)",
    )
    serve.add_argument("--brand-id", type=int, default=defaults.brand_id, help="brand id")
    serve.add_argument("--tenant-id", default=defaults.tenant_id, help="tenant id")
    serve.add_argument(
        "--business-unit-id", type=int, default=defaults.business_unit_id, help="business unit"
    )
    serve.add_argument("--access-key-id", default=defaults.access_key_id, help="access key id")
    serve.add_argument(
        "--access-key-secret", default=defaults.access_key_secret, help="access key secret"
    )
    serve.add_argument("--client-id", default=defaults.client_id, help="OAuth client id")
    serve.add_argument(
        "--client-secret", default=defaults.client_secret, help="OAuth client secret"
    )
    serve.add_argument(
        "--token-ttl",
        type=float,
        default=defaults.token_ttl_seconds,
        metavar="SECONDS",
        help="lifetime of issued bearer tokens",
    )
    serve.add_argument(
        "--seed", type=int, default=None, help="seed for ids and fault injection (default: random)"
    )
    serve.add_argument(
        "--integration",
        action="append",
        default=[],
        metavar="SPEC",
        help="register an integration: "
        + ",".join(f"{k}=..." for k in _INTEGRATION_KEYS)
        + " (repeatable; reply_style is legacy or dfo3, default dfo3; message_ids is body,"
        " header or none, default body; default: none)",
    )
    serve.add_argument(
        "--channel",
        action="append",
        default=[],
        metavar="SPEC",
        help="pre-create a channel: id=...,integration=...,name=... (repeatable; default: none)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    return EmulatorConfig(
        base_path=args.base_path,
        public_url=args.public_url,
        brand_id=args.brand_id,
        tenant_id=args.tenant_id,
        business_unit_id=args.business_unit_id,
        access_key_id=args.access_key_id,
        access_key_secret=args.access_key_secret,
        client_id=args.client_id,
        client_secret=args.client_secret,
        token_ttl_seconds=args.token_ttl,
        seed=args.seed,
        integrations=[parse_integration(spec) for spec in args.integration],
        channels=[parse_channel(spec) for spec in args.channel],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args)
    except ValueError as exc:  # SpecError, or a channel naming an unknown integration
        parser.error(str(exc))  # exits with status 2
    import uvicorn  # imported late so `--help` and spec errors stay fast

    from cxone_emulator.app import create_app

    app = create_app(config)
    # What start-up allocated lives as long as the process: out of the collector's sight, full
    # collections stay short instead of pausing every request for tens of milliseconds.
    gc.collect()
    gc.freeze()
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
