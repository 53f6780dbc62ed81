"""One widget's socket session: hello, replay from the store, then live.

A session only ever sends what the store holds: on connect it replays the conversation past
the widget's last sequence number, and on every wake-up from the bus it sends what is newer
than what it already sent. So replay and live delivery are one path, and a missed wake-up or a
reconnect can never lose or reorder a message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from functools import partial
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect

from byoc.bus import LocalBus, Subscription
from byoc.channels.adapter import message_view
from byoc.channels.attachment_store import NotUploaded, uploaded_links
from byoc.channels.webchat.abuse import WidgetLimits
from byoc.channels.webchat.config import WebchatSettings
from byoc.channels.webchat.identity import WidgetIdentity
from byoc.channels.webchat.protocol import (
    AttachmentRef,
    BusEvent,
    ErrorOut,
    FrameError,
    Hello,
    MessageFrame,
    MessageView,
    NewConversationFrame,
    ReceiptFrame,
    ServerFrame,
    StillHereFrame,
    TypingFrame,
    WelcomeFrame,
    WidgetFrame,
    encode,
    parse_widget_frame,
    read_bus_event,
    receive_frame,
)
from byoc.clock import Clock
from byoc.conversations.models import CustomerMessageIn, CustomerProfile
from byoc.conversations.service import ConversationService
from byoc.errors import AttachmentGone, ByocError, ConversationEnded, NotFound
from byoc.store import Connection, Database, conversations, customers, messages
from byoc.store.records import Channel, Conversation, Customer, Message

log = logging.getLogger(__name__)

# The socket's customer was erased while it was open: reconnect (docs/webchat-protocol.md).
CLOSE_ERASED = 4410


class WidgetSession:
    def __init__(
        self,
        ws: WebSocket,
        channel: Channel,
        settings: WebchatSettings,
        identity: WidgetIdentity,
        customer: Customer,
        *,
        service: ConversationService,
        db: Database,
        bus: LocalBus,
        public_url: str,
        limits: WidgetLimits,
        clock: Clock,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.ws = ws
        self.service = service
        self.db = db
        self.bus = bus
        self.public_url = public_url
        self.channel = channel
        self.settings = settings
        self.identity = identity
        self.customer = customer
        self.conversation: Conversation | None = None
        self.last_seq = -1
        self.told_ended: str | None = None
        self.address = ws.client.host if ws.client else ""
        self.last_heard = time.monotonic()
        self._send_lock = asyncio.Lock()

    def _view(self, message: Message) -> MessageView:
        """A message as the widget sees it; its own messages carry the widget's clientId."""
        view = message_view(message)
        prefix = f"{self.identity.external_id}/"
        if message.platform_message_id and message.platform_message_id.startswith(prefix):
            view["clientId"] = message.platform_message_id[len(prefix) :]
        return view

    async def send(self, frame: ServerFrame) -> None:
        async with self._send_lock:
            await self.ws.send_text(encode(frame))

    # --- lifecycle ---------------------------------------------------------------------------

    async def welcome(self, hello: Hello) -> None:
        def read(conn: Connection) -> tuple[Conversation | None, list[Message], int]:
            conversation = conversations.latest_conversation(
                conn, self.customer.id, open_only=False
            )
            if conversation is not None and conversation.dismissed_at is not None:
                return None, [], -1  # ended, and the customer asked for a fresh start
            if conversation is None:
                return None, [], -1
            resume = hello.thread_id == conversation.id and hello.after_seq is not None
            after = hello.after_seq if resume and hello.after_seq is not None else -1
            newer = messages.list_messages(conn, conversation.id, after_seq=after)
            return conversation, newer, max([after, *(m.seq for m in newer)])

        self.conversation, newer, last_seq = await self.db.run_read(read)
        if self.conversation is not None:
            self.last_seq = last_seq
        if self.conversation is not None and not self.conversation.is_open:
            self.told_ended = self.conversation.id
        await self.send(self._welcome_frame(newer))
        if self.conversation is not None and self.conversation.countdown_deadline is not None:
            await self.send(
                {"type": "idle_warning", "deadline": self.conversation.countdown_deadline}
            )

    def _welcome_frame(self, messages: list[Message]) -> WelcomeFrame:
        conversation = self.conversation
        return {
            "type": "welcome",
            "customerId": self.customer.id,
            "conversation": None
            if conversation is None
            else {"threadId": conversation.id, "state": conversation.state},
            "messages": [self._view(m) for m in messages],
            "agentTyping": False,
            "config": self.settings.public_config(),
        }

    async def run(self, subscription: Subscription) -> None:
        """Read the widget's frames here; one companion task follows the bus and keeps the
        heartbeat (an idle socket costs one extra task, not three)."""
        companion = asyncio.create_task(self._follow(subscription))
        companion.add_done_callback(self._companion_done)
        try:
            await self._read_frames()
        finally:
            companion.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await companion

    def _companion_done(self, task: asyncio.Task[None]) -> None:
        # If following the bus fails, the widget would silently miss messages: drop the socket
        # instead, and let the widget reconnect and resume from the store.
        if not task.cancelled() and task.exception() is not None:
            log.warning("widget session: follower failed: %r", task.exception())
            asyncio.get_running_loop().create_task(self._close_quietly(1011))

    async def _close_quietly(self, code: int) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code)

    async def _follow(self, subscription: Subscription) -> None:
        interval = self.settings.heartbeat_seconds
        next_ping = time.monotonic() + interval
        while True:
            try:
                async with asyncio.timeout(max(0.0, next_ping - time.monotonic())):
                    notification = await subscription.get()
            except TimeoutError:
                if time.monotonic() - self.last_heard > 3 * interval:
                    await self._close_quietly(4408)  # the widget went silent: a dead socket
                    return
                await self.send({"type": "ping"})
                next_ping = time.monotonic() + interval
                continue
            await self._on_notification(read_bus_event(notification))

    async def _read_frames(self) -> None:
        while True:
            client_id: str | None = None
            try:
                raw = await receive_frame(self.ws)
                self.last_heard = time.monotonic()
                frame = parse_widget_frame(raw)
                if isinstance(frame, MessageFrame):
                    client_id = frame.client_id
                await self._on_frame(frame)
            except FrameError as exc:
                await self._error(exc.code, exc.detail, exc.client_id or client_id)
            except ConversationEnded as exc:
                await self._error("conversation-ended", exc.detail, client_id)
                await self._sync()
            except NotFound as exc:
                if not await self._customer_still_held():
                    # Erased (`byoc customers erase`) while connected: this socket follows a
                    # customer who is gone. Closed, the widget reconnects as a customer anew.
                    await self._close_quietly(CLOSE_ERASED)
                    return
                await self._error(exc.slug, exc.detail, client_id)
            except ByocError as exc:
                await self._error(exc.slug, exc.detail, client_id)

    async def _customer_still_held(self) -> bool:
        held = partial(customers.get_customer, customer_id=self.customer.id)
        return await self.db.run_read(held) is not None

    async def _error(self, code: str, detail: str, client_id: str | None) -> None:
        error: ErrorOut = {"type": "error", "code": code, "detail": detail}
        if client_id:
            error["clientId"] = client_id
        await self.send(error)

    # --- frames from the widget ----------------------------------------------------------------

    async def _on_frame(self, frame: WidgetFrame) -> None:
        if isinstance(frame, ReceiptFrame | StillHereFrame) and self._over_receipts():
            return  # past the visitor's budget: dropped (each is a write)
        match frame:
            case MessageFrame():
                await self._customer_message(frame)
            case TypingFrame():
                if self.conversation is not None and self.conversation.is_open:
                    await self.limits.forward_typing(
                        self.conversation.id,
                        bool(frame.typing),
                        partial(self._typing_to_cxone, self.conversation.id),
                    )
            case ReceiptFrame():
                if frame.message_id:
                    with contextlib.suppress(NotFound):
                        await self.service.report_receipt(
                            self.channel.id,
                            frame.message_id,
                            frame.type,
                            customer_id=self.customer.id,
                        )
            case StillHereFrame():
                if self.conversation is not None and self.conversation.is_open:
                    await self.service.customer_active(self.conversation.id)
            case NewConversationFrame():
                if self.conversation is not None and not self.conversation.is_open:
                    await self.service.dismiss_ended(self.conversation.id)
                    self.conversation = None
                    self.last_seq = -1
                    await self.send(self._welcome_frame([]))
            case Hello():
                raise FrameError("invalid", "unknown frame type 'hello'")

    def _over_receipts(self) -> bool:
        return self.limits.over_receipts(self.channel.id, self.identity.external_id)

    async def _customer_message(self, frame: MessageFrame) -> None:
        text = (frame.text or "").strip()
        if len(text) > self.settings.max_text_length:
            raise FrameError(
                "too-long", f"messages are limited to {self.settings.max_text_length} characters"
            )
        if not text and not frame.attachments:
            raise FrameError("invalid", "a message needs text or an attachment")
        if not frame.client_id:
            raise FrameError("invalid", "clientId is required")
        wait = await self.limits.take_message(
            self.channel.id, self.settings, self.identity.external_id, self.address
        )
        if wait is not None:
            raise FrameError("rate-limited", f"you are sending messages too fast; wait {wait} s")
        attachments = await self._attachments(frame.attachments)
        custom_fields = self.settings.prechat_values(frame.prechat, first=self.conversation is None)
        incoming = CustomerMessageIn(
            channel_id=self.channel.id,
            customer=CustomerProfile(
                external_id=self.identity.external_id, custom_fields=custom_fields
            ),
            text=text or None,
            attachments=attachments,
            platform_message_id=f"{self.identity.external_id}/{frame.client_id}",
            thread_id=self.conversation.id if self.conversation else None,
            postback=frame.postback,
            upload_ids=tuple(ref.id for ref in frame.attachments),
        )
        try:
            delivered = await self.service.receive_customer_message(incoming)
        except AttachmentGone as exc:
            raise FrameError("invalid", exc.detail, frame.client_id) from exc
        await self.send(
            {"type": "ack", "clientId": frame.client_id, "message": self._view(delivered.message)}
        )
        if delivered.customer.id != self.customer.id:  # erased, then stored as a new customer
            await self._close_quietly(CLOSE_ERASED)
            return
        # Other tabs of the same customer show it too; this one gets it (again) from _sync,
        # which the widget de-duplicates by id.
        self.bus.publish(self.customer.id, {"kind": "messages"})

    async def _typing_to_cxone(self, conversation_id: str, typing: bool) -> None:
        await self.service.customer_typing(self.channel.id, conversation_id, typing=typing)

    async def _attachments(self, refs: list[AttachmentRef]) -> list[dict[str, Any]]:
        ids, customer_id = [ref.id for ref in refs], self.customer.id
        read = partial(uploaded_links, public_url=self.public_url, customer_id=customer_id, ids=ids)
        try:
            # Marked as carried by the message's own transaction (`upload_ids`), which refuses
            # the message if one went meanwhile (a sweep, a purge): never a dead link.
            return await self.db.run_read(read) if refs else []
        except NotUploaded as exc:
            raise FrameError("invalid", f"no uploaded attachment {exc.args[0]!r}") from exc

    # --- wake-ups from the bus ---------------------------------------------------------------

    async def _on_notification(self, event: BusEvent) -> None:
        conversation = self.conversation
        if event["kind"] == "typing":
            if conversation is not None and event.get("threadId") == conversation.id:
                await self.send(
                    {
                        "type": "typing",
                        "typing": bool(event.get("typing")),
                        "author": event.get("author"),
                    }
                )
        elif event["kind"] == "status":
            await self.send(
                {
                    "type": "status",
                    "messageId": event.get("messageId"),
                    "status": event.get("status"),
                }
            )
        elif event["kind"] == "idle_warning":
            await self._sync()  # the warning's own message first
            await self.send({"type": "idle_warning", "deadline": event.get("deadline")})
        elif event["kind"] == "idle_cleared":
            await self.send({"type": "idle_cleared"})
        elif (
            event["kind"] == "messages"
            and conversation is not None
            and conversation.is_open
            and event.get("threadId") == conversation.id
        ):
            # The common case: a new message on the thread shown (with files: named, see below).
            await self._send_newer(event.get("messageId") if event.get("files") else None)
        else:
            await self._sync()

    async def _send_newer(self, delivered: str | None = None) -> None:
        assert self.conversation is not None
        thread, newer = self.conversation.id, await self._newer_messages(self.conversation.id)
        # Shown before its delivery (a welcome, a sync) while its files were fetched: shown again
        # as delivered, with the links kept here (the widget updates it in place).
        early = delivered is not None and all(m.id != delivered for m in newer)
        again = await self.db.run_read(messages.get_message, delivered or "") if early else None
        if again is not None and again.conversation_id == thread and again.seq <= self.last_seq:
            await self.send({"type": "message", "message": self._view(again)})
        await self._send_messages(newer)

    async def _newer_messages(self, conversation_id: str) -> list[Message]:
        return await self.db.run_read(
            partial(
                messages.list_messages, conversation_id=conversation_id, after_seq=self.last_seq
            )
        )

    async def _send_messages(self, messages: list[Message]) -> None:
        for message in messages:
            if message.seq <= self.last_seq:
                continue  # a concurrent wake-up sent it already
            self.last_seq = message.seq  # claimed before the await: no second sender
            await self.send({"type": "message", "message": self._view(message)})

    async def _sync(self) -> None:
        """Send whatever the store holds that this widget has not been sent yet."""
        latest = await self.db.run_read(
            partial(
                conversations.latest_conversation, customer_id=self.customer.id, open_only=False
            )
        )
        if latest is None or latest.dismissed_at is not None:
            return
        if self.conversation is None or latest.id != self.conversation.id:
            if self.conversation is None or latest.created_at >= self.conversation.created_at:
                self.conversation = latest
                self.last_seq = -1
        else:
            self.conversation = latest
        await self._send_messages(await self._newer_messages(self.conversation.id))
        if not self.conversation.is_open and self.told_ended != self.conversation.id:
            self.told_ended = self.conversation.id
            await self.send(
                {
                    "type": "ended",
                    "threadId": self.conversation.id,
                    "reason": self.conversation.ended_reason or "ended",
                }
            )
