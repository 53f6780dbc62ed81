"""Messages as the service receives them, for tests that call `ConversationService` directly."""

from __future__ import annotations

from byoc.conversations.models import AgentMessageIn


def agent_reply(thread_id: str, de_message_id: str, text: str | None = None) -> AgentMessageIn:
    """A plain text reply of an agent on a known thread, with CXone's message id (its text is
    that id unless given)."""
    text = de_message_id if text is None else text
    return AgentMessageIn(
        thread_id=thread_id,
        de_thread_id=None,
        de_message_id=de_message_id,
        content={"type": "TEXT", "payload": {"text": text}},
        text=text,
        attachments=[],
        author=None,
        brand=None,
        recipients=[],
    )
