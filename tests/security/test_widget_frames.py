"""Widget frames carrying text no store can hold: the same clear error on SQLite and PostgreSQL.

A NUL character arrives in a WebSocket text frame as the JSON escape `\\u0000`; PostgreSQL
refuses it in `text`, SQLite stores it. Refused at the frame, the widget gets an error frame
naming the message, the socket stays usable, and nothing reaches the store or CXone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.emulator import Emulator
from tests.support.waiting import wait_for
from tests.support.webchat import Webchat
from tests.support.widget import Widget, custom_webchat, widget


async def refused_then_accepted(w: Widget) -> None:
    for frame in (
        {"type": "message", "clientId": "nul-text", "text": "a\u0000b"},
        {"type": "message", "clientId": "nul-postback", "text": "Yes", "postback": "p\u0000"},
        {"type": "message", "clientId": "nul-prechat", "text": "hi", "prechat": {"k": "\u0000"}},
    ):
        await w.send(frame)
        error = await w.expect("error", clientId=frame["clientId"])
        assert error["code"] == "invalid-input", error
    # The socket still works, and only the good message was stored.
    ack = await w.say("after the refusals")
    assert ack["message"]["text"] == "after the refusals"


def texts_sent_to_cxone(chat: Webchat) -> list[str]:
    created = chat.emulator.requests(path_contains=f"/channels/{chat.channel_id}/messages")
    return [
        r["requestBody"]["messageContent"]["payload"]["text"]
        for r in created
        if r["method"] == "POST" and isinstance(r.get("requestBody"), dict)
    ]


async def test_nul_in_a_widget_frame_is_refused_on_sqlite(
    tmp_path: Path, emulator: Emulator
) -> None:
    async with custom_webchat(tmp_path, emulator) as chat, widget(chat) as w:
        await refused_then_accepted(w)
        sent = wait_for(lambda: texts_sent_to_cxone(chat), what="the message in CXone")
        assert sent == ["after the refusals"]


@pytest.mark.postgres
async def test_nul_in_a_widget_frame_is_refused_on_postgres(
    tmp_path: Path, emulator: Emulator, postgres_url: str
) -> None:
    overrides = {"database_url": postgres_url}
    async with custom_webchat(tmp_path, emulator, overrides) as chat, widget(chat) as w:
        await refused_then_accepted(w)
        sent = wait_for(lambda: texts_sent_to_cxone(chat), what="the message in CXone")
        assert sent == ["after the refusals"]
