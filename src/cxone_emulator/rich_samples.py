"""One sample `messageContent` per rich type, for the console's picker and for tests.

Shapes as NICE's chat SDKs read them (docs/rich-messages.md); images are served by the
emulator itself, so the samples work without a network.
"""

from __future__ import annotations

from typing import Any

JsonObject = dict[str, Any]


def _image(root: str, name: str) -> JsonObject:
    return {
        "url": f"{root}/static/{name}.svg",
        "fileName": f"{name}.svg",
        "mimeType": "image/svg+xml",
    }


def rich_samples(root: str) -> dict[str, JsonObject]:
    """`root`: the emulator's external URL, which the images are fetched from."""
    return {
        "QUICK_REPLIES": {
            "type": "QUICK_REPLIES",
            "fallbackText": "Which drink would you like? Espresso, Latte or Tea",
            "payload": {
                "text": {"content": "Which drink would you like?"},
                "actions": [
                    {"type": "REPLY_BUTTON", "text": "Espresso", "postback": "drink=espresso"},
                    {"type": "REPLY_BUTTON", "text": "Latte", "postback": "drink=latte"},
                    {"type": "REPLY_BUTTON", "text": "Tea", "postback": "drink=tea"},
                ],
            },
        },
        "LIST_PICKER": {
            "type": "LIST_PICKER",
            "fallbackText": "Pick a table: Window, Garden or Bar",
            "payload": {
                "title": {"content": "Pick a table"},
                "text": {"content": "All tables are free tonight."},
                "actions": [
                    {
                        "type": "REPLY_BUTTON",
                        "text": "Window",
                        "description": "Two seats, street view",
                        "postback": "table=window",
                        "icon": _image(root, "sample-espresso"),
                    },
                    {
                        "type": "REPLY_BUTTON",
                        "text": "Garden",
                        "description": "Four seats, outside",
                        "postback": "table=garden",
                        "icon": _image(root, "sample-tea"),
                    },
                    {
                        "type": "REPLY_BUTTON",
                        "text": "Bar",
                        "description": "High stools by the taps",
                        "postback": "table=bar",
                        "icon": _image(root, "sample-latte"),
                    },
                ],
            },
        },
        "RICH_LINK": {
            "type": "RICH_LINK",
            "fallbackText": "Tonight's menu: https://example.com/menu",
            "payload": {
                "title": {"content": "Tonight's menu"},
                "url": "https://example.com/menu",
                "media": _image(root, "sample-card"),
            },
        },
        "ADAPTIVE_CARD": {
            "type": "ADAPTIVE_CARD",
            "fallbackText": "Your order #1042: 1 latte, ready at 18:30",
            "payload": {
                "type": "AdaptiveCard",
                "version": "1.5",
                "body": [
                    {"type": "TextBlock", "text": "Your order #1042", "weight": "Bolder"},
                    {"type": "Image", "url": f"{root}/static/sample-latte.svg", "altText": "Latte"},
                    {
                        "type": "FactSet",
                        "facts": [
                            {"title": "Drink", "value": "Latte"},
                            {"title": "Ready at", "value": "18:30"},
                        ],
                    },
                    {"type": "Input.Text", "id": "note", "placeholder": "A note for the barista"},
                ],
                "actions": [
                    {"type": "Action.Submit", "title": "Confirm", "data": "order=1042:confirm"},
                    {
                        "type": "Action.OpenUrl",
                        "title": "Track it",
                        "url": "https://example.com/o/1042",
                    },
                ],
            },
        },
    }
