"""Anonymous uploads at the same moment, on several workers or pods, keep the channel's quota.

An anonymous upload's transaction adds up what was uploaded within the window, then stores
the new file. On PostgreSQL two of them can add up before either has stored its file, and
both pass where one should be refused. The second must wait for the first and count it.
"""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import Connection

from byoc.channels.webchat.abuse import WidgetLimits
from byoc.clock import SystemClock
from byoc.ops.rate_limits import RateLimits
from byoc.settings import Settings
from byoc.store import Database, attachments
from byoc.store.records import StoredAttachment
from tests.support import loopback
from tests.support.emulator import Emulator
from tests.support.postgres import fresh_database, until_waiting_or_done
from tests.support.widget import custom_webchat

pytestmark = pytest.mark.postgres

CHANNEL_QUOTA = 1000


async def test_two_anonymous_uploads_at_once_keep_the_channels_quota(
    tmp_path: Path, emulator: Emulator
) -> None:
    manager = fresh_database()
    url = await asyncio.to_thread(manager.__enter__)
    try:
        async with (
            custom_webchat(
                tmp_path,
                emulator,
                overrides={"database_url": url, "widget_upload_quota_channel_bytes": CHANNEL_QUOTA},
            ) as chat,
            loopback.async_client() as http,
        ):
            upload_url = f"{chat.url}/webchat/v1/channels/{chat.channel_id}/attachments"

            async def upload(size: int) -> str:
                """201, or the problem type of the refusal."""
                headers = {"X-Byoc-Visitor": secrets.token_hex(16), "Origin": chat.page_origin}
                files = {"file": ("note.txt", b"x" * size, "text/plain")}
                answer = await http.post(upload_url, files=files, headers=headers)
                return "201" if answer.status_code == 201 else str(answer.json()["type"])

            assert await upload(100) == "201"  # 100 of the channel's 1000 bytes used
            watcher = await asyncpg.connect(url)
            db = Database(url)
            customer_id = await watcher.fetchval("SELECT customer_id FROM attachments")
            limits = WidgetLimits(
                RateLimits(),
                Settings(
                    environment="development", widget_upload_quota_channel_bytes=CHANNEL_QUOTA
                ),
                SystemClock(),
            )
            try:
                async with db.engine.begin() as conn:
                    # Another worker's upload of 600 bytes: checked, stored, not committed.
                    def first(sync: Connection) -> None:
                        stored = StoredAttachment(
                            "att_first", chat.channel_id, customer_id, "t" * 32, "a.txt",
                            "text/plain", 600, SystemClock().now_ms(), anonymous_from="10.0.0.9",
                        )  # fmt: skip
                        attachments.insert_attachment(sync, stored, b"x" * 600)
                        limits.check_upload_quota(
                            sync, channel_id=chat.channel_id, customer_id=customer_id,
                            address="10.0.0.9",
                        )  # fmt: skip

                    await conn.run_sync(first)
                    second = asyncio.create_task(upload(400))

                    await until_waiting_or_done(
                        watcher, second, what="the upload to wait for the other"
                    )
                refused = await asyncio.wait_for(second, timeout=10)
                assert refused == "urn:byoc:problem:upload-quota-exceeded"
            finally:
                await watcher.close()
                await db.close()
    finally:
        await asyncio.to_thread(manager.__exit__, None, None, None)
