"""Rich message content (docs/rich-messages.md): what CXone's agents and bots send besides text.

`normalize` checks an agent message's `messageContent` once, where it enters (the box), and
returns what is stored: the content in CXone's own shape, cleaned of what we do not carry, and
its plain-text fallback. `view` turns stored content into the versioned shape that platforms
and the widget receive (`rich` beside `text`/`fallbackText` in a message). `choice_content` is
the other direction: a customer's pick of a button or list item, as CXone's `messageContent`.

Every size is bounded and every URL must be http(s): a message that breaks either is refused
(`InvalidRichContent`), because a platform would otherwise render a `javascript:` link or a
thousand buttons. A type we do not know is not refused: its fallback text is delivered.
"""

from byoc.conversations.rich.check import MAX_POSTBACK, RICH_TYPES, normalize
from byoc.conversations.rich.view import VIEW_VERSION, choice_content, view

__all__ = ["MAX_POSTBACK", "RICH_TYPES", "VIEW_VERSION", "choice_content", "normalize", "view"]
