"""Outbox kinds have one home: `byoc.outbox.kinds` names them, derives their lanes and types
their payloads; the delivery registry has exactly one handler per kind."""

from __future__ import annotations

import re
from pathlib import Path
from typing import cast

import pytest

from byoc.channels import ADAPTERS, WEBHOOK
from byoc.channels.adapter import ChannelAdapter
from byoc.delivery import RegistryError
from byoc.delivery.registry import _exactly_the_kinds, every_adapter
from byoc.outbox import kinds
from byoc.outbox.outcome import Outcome, Settled
from byoc.store.records import OutboxRow
from tests.support.outbox import row_of

SRC = Path(__file__).resolve().parents[2] / "src"
HOME = SRC / "byoc" / "outbox" / "kinds.py"
MIGRATIONS = SRC / "byoc" / "store" / "alembic"

SAMPLES: list[kinds.Payload] = [
    kinds.CustomerMessage("conv_1", message_id="msg_1"),
    kinds.MessageStatus("conv_1", message_id="msg_1", status="seen", at=5, reason="why"),
    kinds.CustomerTyping("conv_1", action="isTypingOn", expires_at=9),
    kinds.BusinessOutbound("conv_1", message_id="msg_1"),
    kinds.SystemMessage("conv_1", message_id="msg_1"),
    kinds.EndContact("conv_1", action="close", contact_id="c-2"),
    kinds.FindContact("conv_1"),
    kinds.AgentMessage("conv_1", message_id="msg_1"),
    kinds.AgentTyping("conv_1", typing=True, expires_at=9, author={"firstName": "Ann"}),
    kinds.IdleChanged("conv_1", warning=True, deadline=7),
    kinds.ConversationEnded("conv_1", reason="idle"),
]


def test_every_kind_string_is_written_in_the_kinds_module_alone() -> None:
    assert {type(sample) for sample in SAMPLES} == set(kinds.KINDS)
    for name in kinds.NAMES:
        literal = re.compile(rf"""["']{re.escape(name)}["']""")
        found = {
            path.relative_to(SRC).as_posix()
            for path in SRC.rglob("*.py")
            if MIGRATIONS not in path.parents and literal.search(path.read_text("utf-8"))
        }
        assert found == {HOME.relative_to(SRC).as_posix()}, name


@pytest.mark.parametrize("payload", SAMPLES, ids=lambda p: p.KIND)
def test_a_payload_survives_its_row(payload: kinds.Payload) -> None:
    stored = row_of(payload.KIND, payload.lane(), payload.to_json())
    assert kinds.decode(stored) == payload
    assert payload.lane().endswith(":conv_1")
    assert payload.lane().split(":")[0].startswith(payload.DESTINATION)


def test_lanes_keep_their_stored_names() -> None:
    lanes = {type(p): p.lane() for p in SAMPLES}
    assert lanes[kinds.CustomerMessage] == "cxone:conv_1"
    assert lanes[kinds.AgentMessage] == "platform:conv_1"
    assert lanes[kinds.CustomerTyping] == "cxone-typing:conv_1"
    assert lanes[kinds.AgentTyping] == "platform-typing:conv_1"
    assert lanes[kinds.IdleChanged] == "platform-idle:conv_1"


def test_a_row_written_before_payloads_named_their_conversation_still_decodes() -> None:
    old = row_of("cxone.create_message", "cxone:conv_9", {"message_id": "msg_9"})
    assert kinds.decode(old) == kinds.CustomerMessage("conv_9", message_id="msg_9")
    receipt = row_of(
        "cxone.message_status", "cxone:conv_9", {"message_id": "m", "status": "seen", "at": 3}
    )
    assert kinds.decode(receipt) == kinds.MessageStatus("conv_9", "m", "seen", 3)


def test_optional_fields_left_unset_are_not_stored() -> None:
    assert kinds.IdleChanged("c", warning=False).to_json() == {
        "conversation_id": "c",
        "warning": False,
    }


def test_a_row_that_fits_no_kind_is_refused_with_its_reason() -> None:
    with pytest.raises(ValueError, match="unknown outbox kind"):
        kinds.decode(row_of("cxone.nothing", "cxone:c", {}))
    with pytest.raises(ValueError, match="message_id"):
        kinds.decode(row_of("platform.message", "platform:c", {"text": "no id"}))


async def _deliver(_row: OutboxRow) -> Outcome:
    return Settled()


def test_the_registry_wants_exactly_one_handler_per_kind() -> None:
    every = [(name, _deliver) for name in kinds.NAMES]
    assert set(_exactly_the_kinds(every)) == set(kinds.NAMES)
    with pytest.raises(RegistryError, match="missing"):
        _exactly_the_kinds(every[1:])
    with pytest.raises(RegistryError, match="twice"):
        _exactly_the_kinds([*every, every[0]])
    with pytest.raises(RegistryError, match="not a kind"):
        _exactly_the_kinds([*every, ("cxone.nothing", _deliver)])


def test_the_registry_wants_exactly_one_adapter_per_adapter_name() -> None:
    every = {name: cast(ChannelAdapter, object()) for name in ADAPTERS}
    assert every_adapter(every) == every
    with pytest.raises(RegistryError, match=r"missing \['webchat'\]"):
        every_adapter({WEBHOOK: every[WEBHOOK]})
    with pytest.raises(RegistryError, match=r"not an adapter \['sms'\]"):
        every_adapter({**every, "sms": every[WEBHOOK]})
