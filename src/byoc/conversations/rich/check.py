"""Checking rich content where it enters, and its plain-text fallback (docs/rich-messages.md).

A rich type is checked and cleaned into CXone's own shape, with a `fallbackText` made from
its parts when CXone sent none. Every size is bounded; every URL must be absolute http(s).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from byoc.errors import InvalidRichContent

RICH_TYPES = frozenset({"QUICK_REPLIES", "LIST_PICKER", "RICH_LINK", "ADAPTIVE_CARD"})

MAX_TEXT = 10_000
MAX_TITLE = 500
MAX_LABEL = 200
MAX_DESCRIPTION = 1_000
MAX_POSTBACK = 1_000
MAX_URL = 2_048
MAX_FILE_NAME = 300
MAX_MIME_TYPE = 100
MAX_QUICK_REPLIES = 13
MAX_LIST_ITEMS = 50
MAX_CARD_ELEMENTS = 100
MAX_CARD_ACTIONS = 20
MAX_FACTS = 50
MAX_CARD_DEPTH = 5

Json = dict[str, Any]


# --- reading pieces, with the path of what is wrong --------------------------------------


def _fail(path: str, problem: str) -> InvalidRichContent:
    return InvalidRichContent(f"{path}: {problem}")


def _object(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise _fail(path, "must be an object")
    return value


def _string(value: Any, path: str, limit: int, *, required: bool = True) -> str | None:
    if value is None:
        if required:
            raise _fail(path, "is required")
        return None
    if not isinstance(value, str):
        raise _fail(path, "must be a string")
    if len(value) > limit:
        raise _fail(path, f"is longer than {limit} characters")
    if required and not value.strip():
        raise _fail(path, "must not be empty")
    return value


def _wrapped(value: Any, path: str, limit: int, *, required: bool = True) -> str | None:
    """CXone wraps display text as `{"content": "..."}`; a bare string is taken as well."""
    if isinstance(value, dict):
        return _string(value.get("content"), f"{path}.content", limit, required=required)
    return _string(value, path, limit, required=required)


def _url(value: Any, path: str, *, required: bool = True) -> str | None:
    url = _string(value, path, MAX_URL, required=required)
    if url is None:
        return None
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise _fail(path, "must be an absolute http(s) URL")
    return url.strip()


def _list(value: Any, path: str, limit: int, *, required: bool = True) -> list[Any]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _fail(path, "must be a list")
    if required and not value:
        raise _fail(path, "must not be empty")
    if len(value) > limit:
        raise _fail(path, f"has more than {limit} entries")
    return value


def _media(value: Any, path: str) -> Json | None:
    if value is None:
        return None
    media = _object(value, path)
    cleaned = {
        "url": _url(media.get("url"), f"{path}.url"),
        "fileName": _string(
            media.get("fileName"), f"{path}.fileName", MAX_FILE_NAME, required=False
        ),
        "mimeType": _string(
            media.get("mimeType"), f"{path}.mimeType", MAX_MIME_TYPE, required=False
        ),
    }
    return {k: v for k, v in cleaned.items() if v is not None}


def _reply_button(value: Any, path: str) -> Json:
    action = _object(value, path)
    kind = action.get("type", "REPLY_BUTTON")
    if kind != "REPLY_BUTTON":
        raise _fail(f"{path}.type", f"{kind!r} is not REPLY_BUTTON")
    cleaned = {
        "type": "REPLY_BUTTON",
        "text": _string(action.get("text"), f"{path}.text", MAX_LABEL),
        "postback": _string(
            action.get("postback"), f"{path}.postback", MAX_POSTBACK, required=False
        ),
        "description": _string(
            action.get("description"), f"{path}.description", MAX_DESCRIPTION, required=False
        ),
        "icon": _media(action.get("icon"), f"{path}.icon"),
    }
    return {k: v for k, v in cleaned.items() if v is not None}


def _actions(payload: Json, path: str, limit: int) -> list[Json]:
    items = _list(payload.get("actions"), f"{path}.actions", limit)
    return [_reply_button(item, f"{path}.actions[{i}]") for i, item in enumerate(items)]


# --- the four types, in CXone's shape ------------------------------------------------------


def _quick_replies(payload: Json, path: str) -> Json:
    return {
        "text": {"content": _wrapped(payload.get("text"), f"{path}.text", MAX_TEXT)},
        "actions": _actions(payload, path, MAX_QUICK_REPLIES),
    }


def _list_picker(payload: Json, path: str) -> Json:
    text = _wrapped(payload.get("text"), f"{path}.text", MAX_TEXT, required=False)
    cleaned: Json = {
        "title": {"content": _wrapped(payload.get("title"), f"{path}.title", MAX_TITLE)}
    }
    if text:
        cleaned["text"] = {"content": text}
    cleaned["actions"] = _actions(payload, path, MAX_LIST_ITEMS)
    return cleaned


def _rich_link(payload: Json, path: str) -> Json:
    cleaned: Json = {
        "title": {"content": _wrapped(payload.get("title"), f"{path}.title", MAX_TITLE)},
        "url": _url(payload.get("url"), f"{path}.url"),
    }
    media = _media(payload.get("media"), f"{path}.media")
    if media is not None:
        cleaned["media"] = media
    return cleaned


def card_of(payload: Json, path: str) -> tuple[Json, str]:
    """The Adaptive Card itself: the payload, or the card it wraps (Bot Framework style)."""
    for key in ("card", "content"):
        inner = payload.get(key)
        if isinstance(inner, dict):
            return inner, f"{path}.{key}"
    return payload, path


def _card_elements(items: Any, path: str, depth: int, count: list[int]) -> list[Json]:
    """Card body elements: the ones we render are checked and kept; others are kept as a
    `type` only, so a renderer knows that something is missing and shows the fallback."""
    if depth > MAX_CARD_DEPTH:
        raise _fail(path, f"nests containers more than {MAX_CARD_DEPTH} deep")
    cleaned: list[Json] = []
    for i, raw in enumerate(_list(items, path, MAX_CARD_ELEMENTS, required=False)):
        where = f"{path}[{i}]"
        count[0] += 1
        if count[0] > MAX_CARD_ELEMENTS:
            raise _fail(path, f"the card has more than {MAX_CARD_ELEMENTS} elements")
        element = _object(raw, where)
        kind = _string(element.get("type"), f"{where}.type", MAX_LABEL)
        if kind == "TextBlock":
            block: Json = {
                "type": kind,
                "text": _string(element.get("text"), f"{where}.text", MAX_TEXT),
            }
            for key in ("weight", "size", "isSubtle", "wrap"):
                if isinstance(element.get(key), str | bool):
                    block[key] = element[key]
            cleaned.append(block)
        elif kind == "Image":
            image: Json = {"type": kind, "url": _url(element.get("url"), f"{where}.url")}
            alt = _string(element.get("altText"), f"{where}.altText", MAX_TITLE, required=False)
            if alt:
                image["altText"] = alt
            cleaned.append(image)
        elif kind == "FactSet":
            facts = _list(element.get("facts"), f"{where}.facts", MAX_FACTS)
            cleaned.append(
                {
                    "type": kind,
                    "facts": [
                        {
                            "title": _string(
                                _object(f, f"{where}.facts[{j}]").get("title"),
                                f"{where}.facts[{j}].title",
                                MAX_TITLE,
                                required=False,
                            )
                            or "",
                            "value": _string(
                                f.get("value"),
                                f"{where}.facts[{j}].value",
                                MAX_TEXT,
                                required=False,
                            )
                            or "",
                        }
                        for j, f in enumerate(facts)
                    ],
                }
            )
        elif kind == "Container":
            nested = _card_elements(element.get("items"), f"{where}.items", depth + 1, count)
            cleaned.append({"type": kind, "items": nested})
        else:
            # Not rendered here (ColumnSet, RichTextBlock, inputs…): its words are kept for the
            # fallback text, so a platform that shows text alone loses none of them.
            unknown: Json = {"type": kind}
            if words := _words_of(element):
                unknown["fallbackText"] = words
            cleaned.append(unknown)
    return cleaned


# The keys whose strings an element shows (a TextBlock's or TextRun's text, a fact, a label).
_WORDS = ("text", "title", "value", "altText", "label")
_MAX_WALK = 500


def _words_of(element: Json) -> str:
    """The strings an element of a kind not rendered here shows, in document order, at most
    `MAX_TEXT` characters (a walk of at most `_MAX_WALK` nodes)."""
    words: list[str] = []
    pending: list[Any] = [element]
    walked = 0
    while pending and walked < _MAX_WALK:
        node = pending.pop()
        walked += 1
        if isinstance(node, dict):
            words += [node[k].strip() for k in _WORDS if isinstance(node.get(k), str)]
            children = list(node.values())
        else:
            children = node
        pending += reversed([v for v in children if isinstance(v, dict | list)])
    return "\n".join(w for w in words if w)[:MAX_TEXT]


def _card_action(raw: Any, path: str) -> Json:
    action = _object(raw, path)
    kind = _string(action.get("type"), f"{path}.type", MAX_LABEL)
    title = _string(action.get("title"), f"{path}.title", MAX_LABEL, required=False)
    if kind == "Action.OpenUrl":
        return {"type": kind, "title": title or "", "url": _url(action.get("url"), f"{path}.url")}
    if kind == "Action.Submit":
        data = action.get("data")
        postback = data if isinstance(data, str) else None
        if data is not None and postback is None:
            postback = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        if postback is not None and len(postback) > MAX_POSTBACK:
            raise _fail(f"{path}.data", f"is longer than {MAX_POSTBACK} characters")
        cleaned: Json = {"type": kind, "title": title or ""}
        if data is not None:
            cleaned["data"] = data
        return cleaned
    return {"type": kind}


def _adaptive_card(payload: Json, path: str) -> Json:
    card, where = card_of(payload, path)
    if card.get("type", "AdaptiveCard") != "AdaptiveCard":
        raise _fail(f"{where}.type", "must be AdaptiveCard")
    body = _card_elements(card.get("body"), f"{where}.body", 1, [0])
    actions = [
        _card_action(a, f"{where}.actions[{i}]")
        for i, a in enumerate(
            _list(card.get("actions"), f"{where}.actions", MAX_CARD_ACTIONS, required=False)
        )
    ]
    if not body and not actions:
        raise _fail(where, "the card has neither body nor actions")
    cleaned: Json = {"type": "AdaptiveCard", "body": body, "actions": actions}
    version = card.get("version")
    if isinstance(version, str) and len(version) <= 20:
        cleaned["version"] = version
    return cleaned


_CHECKS: dict[str, Callable[[Json, str], Json]] = {
    "QUICK_REPLIES": _quick_replies,
    "LIST_PICKER": _list_picker,
    "RICH_LINK": _rich_link,
    "ADAPTIVE_CARD": _adaptive_card,
}


# --- fallback text -------------------------------------------------------------------------


def _choices_text(lead: list[str], actions: list[Json]) -> str:
    lines = [line for line in lead if line]
    lines += [
        f"• {a['text']}" + (f" ({a['description']})" if a.get("description") else "")
        for a in actions
    ]
    return "\n".join(lines)


def _card_text(elements: list[Json], actions: list[Json]) -> str:
    lines: list[str] = []
    for element in elements:
        if element["type"] == "TextBlock":
            lines.append(element["text"])
        elif element["type"] == "FactSet":
            lines += [f"{fact['title']}: {fact['value']}" for fact in element["facts"]]
        elif element["type"] == "Container":
            lines.append(_card_text(element["items"], []))
        elif element["type"] == "Image":
            lines.append(element.get("altText") or element["url"])
        else:
            lines.append(element.get("fallbackText", ""))
    for action in actions:
        if action["type"] == "Action.OpenUrl":
            lines.append(
                f"{action['title']}: {action['url']}" if action["title"] else action["url"]
            )
        elif action["type"] == "Action.Submit" and action["title"]:
            lines.append(f"• {action['title']}")
    return "\n".join(line for line in lines if line)


def _derived_fallback(kind: str, payload: Json) -> str:
    if kind == "QUICK_REPLIES":
        return _choices_text([payload["text"]["content"]], payload["actions"])
    if kind == "LIST_PICKER":
        lead = [payload["title"]["content"], payload.get("text", {}).get("content", "")]
        return _choices_text(lead, payload["actions"])
    if kind == "RICH_LINK":
        return f"{payload['title']['content']}\n{payload['url']}"
    card, _ = card_of(payload, "")
    return _card_text(card["body"], card["actions"])


# --- the public functions ------------------------------------------------------------------


def normalize(content: Json, path: str = "messageContent") -> tuple[Json, str | None]:
    """The content to store and its text: TEXT as it came; a rich type checked, cleaned and
    given a `fallbackText`; an unknown type as it came, with whatever text it offers."""
    kind = content.get("type", "TEXT")
    payload = content.get("payload")
    if kind == "TEXT":
        text = payload.get("text") if isinstance(payload, dict) else None
        return content, text if isinstance(text, str) else None
    given = _string(content.get("fallbackText"), f"{path}.fallbackText", MAX_TEXT, required=False)
    check = _CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        text = payload.get("text") if isinstance(payload, dict) else None
        fallback = given or (text if isinstance(text, str) else None)
        return content, fallback or f"[A {kind} message that this channel cannot show]"
    cleaned = check(_object(payload, f"{path}.payload"), f"{path}.payload")
    fallback = (given or "").strip() or _derived_fallback(kind, cleaned)
    return {"type": kind, "payload": cleaned, "fallbackText": fallback}, fallback
