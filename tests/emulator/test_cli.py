"""The `cxone-emulator` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cxone_emulator.cli import build_parser, config_from_args, main
from tests.support import loopback
from tests.support.servers import answering, free_port
from tests.support.waiting import wait_for

INTEGRATION = (
    "id=i1,box_url=http://127.0.0.1:9000/box,authorization_url=http://127.0.0.1:9000/token,"
    "client_id=c,client_secret=s,reply_style=legacy,name=Shop,action_url=http://x/action"
)


def test_help_documents_every_flag_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    for flag in [
        "--host",
        "--port",
        "--base-path",
        "--public-url",
        "--brand-id",
        "--tenant-id",
        "--business-unit-id",
        "--access-key-id",
        "--access-key-secret",
        "--client-id",
        "--client-secret",
        "--token-ttl",
        "--seed",
        "--integration",
        "--channel",
        "--log-level",
    ]:
        assert flag in text
    assert "(default: 8090)" in text
    assert "(default: /dfo/3.0)" in text


def test_specs_become_config() -> None:
    args = build_parser().parse_args(
        ["serve", "--integration", INTEGRATION, "--channel", "id=chat_1,integration=i1,name=Web"]
    )
    config = config_from_args(args)
    integration = config.integrations[0]
    assert integration.id == "i1"
    assert integration.reply_style == "legacy"
    assert integration.name == "Shop"
    assert integration.action_url == "http://x/action"
    assert integration.message_ids == "body"
    headers_only = config_from_args(
        build_parser().parse_args(["serve", "--integration", INTEGRATION + ",message_ids=header"])
    )
    assert headers_only.integrations[0].message_ids == "header"
    assert config.channels[0].id == "chat_1"
    assert config.channels[0].name == "Web"


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--integration", "id=i1"],
        ["serve", "--integration", INTEGRATION + ",colour=red"],
        ["serve", "--integration", INTEGRATION.replace("legacy", "v9")],
        ["serve", "--integration", INTEGRATION + ",message_ids=sometimes"],
        ["serve", "--channel", "id=c,integration=missing"],
        ["serve", "--channel", "justtext"],
    ],
)
def test_bad_spec_exits_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_python_m_serves_the_emulator() -> None:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cxone_emulator",
            "serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--integration",
            INTEGRATION,
            "--channel",
            "id=chat_1,integration=i1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        with loopback.client(base_url=url) as client:
            response = wait_for(
                answering(lambda: client.get("/emulator/channels")),
                timeout=15,
                what="the emulator to start",
            )
            assert [c["id"] for c in response.json()["data"]] == ["chat_1"]
    finally:
        process.terminate()
        process.wait(timeout=10)
