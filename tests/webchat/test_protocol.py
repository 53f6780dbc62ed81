"""Parsing the widget's frames: one function, a typed frame or an error the widget is sent."""

from __future__ import annotations

import pytest

from byoc.channels.webchat.protocol import (
    FrameError,
    Hello,
    MessageFrame,
    ReceiptFrame,
    TypingFrame,
    parse_widget_frame,
    read_bus_event,
)


def test_each_type_parses_to_its_own_frame() -> None:
    hello = parse_widget_frame('{"type":"hello","channel":"chat_1","afterSeq":3,"extra":1}')
    assert isinstance(hello, Hello)
    assert (hello.channel, hello.after_seq) == ("chat_1", 3)
    message = parse_widget_frame(
        '{"type":"message","clientId":"c-1","text":"hi","attachments":[{"id":"att_1"}]}'
    )
    assert isinstance(message, MessageFrame)
    assert (message.client_id, message.attachments[0].id) == ("c-1", "att_1")
    typing = parse_widget_frame('{"type":"typing","typing":true}')
    assert isinstance(typing, TypingFrame)
    assert typing.typing is True
    seen = parse_widget_frame('{"type":"seen","messageId":"msg_1"}')
    assert isinstance(seen, ReceiptFrame)
    assert (seen.type, seen.message_id) == ("seen", "msg_1")


@pytest.mark.parametrize(
    ("raw", "detail", "client_id"),
    [
        ('{"type":"dance","clientId":"c-9"}', "unknown frame type 'dance'", "c-9"),
        ('{"text":"no type"}', "a frame needs a type", None),
        ("not json", "Invalid JSON", None),
        ('{"type":"hello"}', "channel: Field required", None),
        ('{"type":"message","clientId":"' + "x" * 101 + '"}', "clientId: String should", None),
        ('{"type":"message","attachments":[{}]}', "attachments.0.id: Field required", None),
    ],
)
def test_malformed_frames_say_what_is_wrong(raw: str, detail: str, client_id: str | None) -> None:
    with pytest.raises(FrameError) as caught:
        parse_widget_frame(raw)
    assert caught.value.code == "invalid"
    assert caught.value.detail.startswith(detail)
    assert caught.value.client_id == client_id


def test_bus_events_of_unknown_kinds_ask_for_a_resync() -> None:
    typing = {"kind": "typing", "threadId": "thr_1", "typing": True, "author": None}
    assert read_bus_event(typing) == typing
    assert read_bus_event({"kind": "something-new"}) == {"kind": "messages"}
