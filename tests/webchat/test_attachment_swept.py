"""An upload deleted while a message takes it is refused, not sent as a dead link.

The sweep deletes uploads that no message carried within the grace period; retention and
erasure delete carried ones too. On PostgreSQL a message taking such an upload can run at the
same moment: the DELETE holds the row, uncommitted, while the message's transaction reaches
it. Once the DELETE commits, the message must be refused (the widget hears `invalid`), and
CXone must get nothing.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

import asyncpg
import pytest

from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.postgres import SESSIONS_WAITING_ON_A_LOCK, fresh_database, until_waiting_or_done
from tests.support.widget import custom_webchat, widget

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("carried_before", [False, True], ids=["sweep", "purge"])
async def test_a_message_taking_an_upload_deleted_meanwhile_is_refused(
    tmp_path: Path, emulator: Emulator, carried_before: bool
) -> None:
    manager = fresh_database()
    url = await asyncio.to_thread(manager.__enter__)
    try:
        visitor = secrets.token_hex(16)
        async with (
            custom_webchat(tmp_path, emulator, overrides={"database_url": url}) as chat,
            loopback.async_client() as http,
        ):
            uploaded = await http.post(
                f"{chat.url}/webchat/v1/channels/{chat.channel_id}/attachments",
                files={"file": ("note.txt", b"old upload", "text/plain")},
                headers={"X-Byoc-Visitor": visitor, "Origin": chat.page_origin},
            )
            assert uploaded.status_code == 201, uploaded.text
            upload_id = uploaded.json()["id"]
            sweep, watcher = await asyncpg.connect(url), await asyncpg.connect(url)
            try:
                async with widget(chat, visitorId=visitor) as w:
                    await w.say("hello")  # the conversation exists before the race
                    if carried_before:  # then only a purge or an erasure deletes it
                        earlier = {"type": "message", "clientId": "c-0", "text": "first"}
                        await w.send({**earlier, "attachments": [{"id": upload_id}]})
                        await w.expect("ack", clientId="c-0")
                    deleting = sweep.transaction()
                    await deleting.start()
                    await sweep.execute("DELETE FROM attachments WHERE id = $1", upload_id)
                    await w.send(
                        {
                            "type": "message",
                            "clientId": "c-1",
                            "text": "see attached",
                            "attachments": [{"id": upload_id}],
                        }
                    )

                    # The message's UPDATE of the row, nothing else, waits on the DELETE.
                    update = SESSIONS_WAITING_ON_A_LOCK + " AND query ILIKE 'UPDATE attachments%'"
                    await until_waiting_or_done(
                        watcher, what="the message to reach the deleted row", query=update
                    )
                    await deleting.commit()
                    error = await w.expect("error", clientId="c-1")
                    assert error["code"] == "invalid"
            finally:
                await sweep.close()
                await watcher.close()
            creates = chat.emulator.requests(f"/channels/{chat.channel_id}/messages", "POST")
            assert all("see attached" not in json.dumps(c["requestBody"]) for c in creates)
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)
