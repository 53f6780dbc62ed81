"""Stored rich content as platforms and the widget see it: version 1 of the `rich` view
(docs/rich-messages.md), and a customer's choice as CXone's `messageContent`."""

from __future__ import annotations

import json
from typing import Any

from byoc.conversations.rich.check import RICH_TYPES, card_of

VIEW_VERSION = 1

Json = dict[str, Any]


def _view_media(media: Json | None) -> str | None:
    return media.get("url") if media else None


def _view_choice(action: Json) -> Json:
    return {
        "label": action["text"],
        "postback": action.get("postback"),
        "description": action.get("description"),
        "imageUrl": _view_media(action.get("icon")),
    }


def _view_elements(elements: list[Json]) -> tuple[list[Json], bool]:
    shown: list[Json] = []
    complete = True
    for element in elements:
        kind = element["type"]
        if kind == "TextBlock":
            block = {"type": "text", "text": element["text"]}
            if element.get("weight") in ("bolder", "Bolder") or element.get("size") in (
                "large",
                "Large",
                "extraLarge",
                "ExtraLarge",
            ):
                block["style"] = "heading"
            elif element.get("isSubtle") is True:
                block["style"] = "subtle"
            shown.append(block)
        elif kind == "Image":
            shown.append(
                {"type": "image", "url": element["url"], "altText": element.get("altText")}
            )
        elif kind == "FactSet":
            shown.append({"type": "facts", "facts": element["facts"]})
        elif kind == "Container":
            nested, whole = _view_elements(element["items"])
            shown += nested
            complete = complete and whole
        else:
            complete = False
    return shown, complete


def _view_card_actions(actions: list[Json]) -> tuple[list[Json], bool]:
    shown: list[Json] = []
    complete = True
    for action in actions:
        if action["type"] == "Action.OpenUrl":
            shown.append(
                {"type": "link", "label": action["title"] or action["url"], "url": action["url"]}
            )
        elif action["type"] == "Action.Submit" and action["title"]:
            data = action.get("data")
            postback = (
                data
                if isinstance(data, str) or data is None
                else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            )
            shown.append({"type": "postback", "label": action["title"], "postback": postback})
        else:
            complete = False
    return shown, complete


def view(content: Json) -> Json | None:
    """Stored content as platforms see it (version 1, docs/rich-messages.md); None for text
    and for types we do not render, whose `text` is all there is to show."""
    kind = content.get("type")
    if kind not in RICH_TYPES or not isinstance(content.get("payload"), dict):
        return None
    payload: Json = content["payload"]
    try:
        if kind == "QUICK_REPLIES":
            return {
                "version": VIEW_VERSION,
                "type": "quick_replies",
                "text": payload["text"]["content"],
                "choices": [_view_choice(a) for a in payload["actions"]],
            }
        if kind == "LIST_PICKER":
            return {
                "version": VIEW_VERSION,
                "type": "list_picker",
                "title": payload["title"]["content"],
                "text": payload.get("text", {}).get("content"),
                "choices": [_view_choice(a) for a in payload["actions"]],
            }
        if kind == "RICH_LINK":
            return {
                "version": VIEW_VERSION,
                "type": "rich_link",
                "title": payload["title"]["content"],
                "url": payload["url"],
                "imageUrl": _view_media(payload.get("media")),
            }
        card, _ = card_of(payload, "")
        body, whole_body = _view_elements(card["body"])
        actions, whole_actions = _view_card_actions(card["actions"])
        return {
            "version": VIEW_VERSION,
            "type": "adaptive_card",
            "body": body,
            "actions": actions,
            "complete": whole_body and whole_actions,
        }
    except (KeyError, TypeError, AttributeError):
        # Stored before this module checked content (or by hand): the text still shows.
        return None


def choice_content(label: str, postback: str | None) -> Json:
    """A customer's choice as CXone's `messageContent`: the label as text, and the postback
    beside it, where NICE's chat SDKs put it."""
    content: Json = {"type": "TEXT", "payload": {"text": label}}
    if postback is not None:
        content["postback"] = postback
    return content
