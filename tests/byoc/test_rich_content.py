"""Checking rich content and its fallback text (`byoc.conversations.rich`), without a server."""

from __future__ import annotations

from typing import Any

import pytest

from byoc.conversations import rich
from byoc.errors import InvalidRichContent


def _card(*body: dict[str, Any], actions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard", "body": list(body)}
    if actions is not None:
        card["actions"] = actions
    return {"type": "ADAPTIVE_CARD", "payload": card}


def test_text_is_kept_as_it_came() -> None:
    content = {"type": "TEXT", "payload": {"text": "hi"}, "extra": 1}
    assert rich.normalize(content) == (content, "hi")
    assert rich.view(content) is None


def test_bare_strings_are_read_as_wrapped_text_and_unknown_fields_dropped() -> None:
    stored, text = rich.normalize(
        {
            "type": "QUICK_REPLIES",
            "payload": {"text": "Hungry?", "actions": [{"text": "Yes", "secret": 1}], "x": 2},
        }
    )
    assert stored == {
        "type": "QUICK_REPLIES",
        "payload": {
            "text": {"content": "Hungry?"},
            "actions": [{"type": "REPLY_BUTTON", "text": "Yes"}],
        },
        "fallbackText": "Hungry?\n• Yes",
    }
    assert text == "Hungry?\n• Yes"


def test_a_card_in_a_container_with_submit_data_as_json() -> None:
    stored, text = rich.normalize(
        _card(
            {
                "type": "Container",
                "items": [
                    {"type": "TextBlock", "text": "Total", "isSubtle": True},
                    {"type": "FactSet", "facts": [{"title": "Sum", "value": "4 EUR"}]},
                ],
            },
            actions=[{"type": "Action.Submit", "title": "Pay", "data": {"pay": True}}],
        )
    )
    assert text == "Total\nSum: 4 EUR\n• Pay"
    view = rich.view(stored)
    assert view is not None
    assert view["body"] == [
        {"type": "text", "text": "Total", "style": "subtle"},
        {"type": "facts", "facts": [{"title": "Sum", "value": "4 EUR"}]},
    ]
    assert view["actions"] == [{"type": "postback", "label": "Pay", "postback": '{"pay":true}'}]
    assert view["complete"] is True


def test_a_card_wrapped_as_an_attachment_is_read() -> None:
    wrapped = {
        "type": "ADAPTIVE_CARD",
        "payload": {
            "contentType": "application/vnd.microsoft.card.adaptive",
            "content": {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "Hi"}]},
        },
    }
    stored, text = rich.normalize(wrapped)
    assert text == "Hi"
    view = rich.view(stored)
    assert view is not None
    assert view["body"] == [{"type": "text", "text": "Hi"}]


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (
            _card({"type": "Image", "url": "javascript:alert(1)"}),
            "messageContent.payload.body[0].url: must be an absolute http(s) URL",
        ),
        (
            _card(actions=[{"type": "Action.OpenUrl", "title": "x", "url": "//evil.example"}]),
            "messageContent.payload.actions[0].url: must be an absolute http(s) URL",
        ),
        (
            _card(*[{"type": "TextBlock", "text": "x"}] * 101),
            "messageContent.payload.body: has more than 100 entries",
        ),
        (
            _card(actions=[{"type": "Action.Submit", "title": "x", "data": {"k": "v" * 1000}}]),
            "messageContent.payload.actions[0].data: is longer than 1000 characters",
        ),
        (
            {"type": "LIST_PICKER", "payload": {"title": "t", "actions": []}},
            "messageContent.payload.actions: must not be empty",
        ),
        (
            {"type": "RICH_LINK", "payload": {"url": "https://example.com"}},
            "messageContent.payload.title: is required",
        ),
        (
            {"type": "QUICK_REPLIES", "payload": {"text": "x", "actions": [{"text": " "}]}},
            "messageContent.payload.actions[0].text: must not be empty",
        ),
    ],
)
def test_out_of_bounds_content_names_the_field(content: dict[str, Any], detail: str) -> None:
    with pytest.raises(InvalidRichContent) as refused:
        rich.normalize(content)
    assert refused.value.detail == detail


def test_containers_nest_only_so_deep() -> None:
    element: dict[str, Any] = {"type": "TextBlock", "text": "deep"}
    for _ in range(6):
        element = {"type": "Container", "items": [element]}
    with pytest.raises(InvalidRichContent, match="nests containers more than 5 deep"):
        rich.normalize(_card(element))


def test_content_stored_in_another_shape_shows_as_text() -> None:
    assert rich.view({"type": "QUICK_REPLIES", "payload": {"text": "no actions"}}) is None


def test_a_choice_is_text_with_its_postback() -> None:
    assert rich.choice_content("Tea", "drink=tea") == {
        "type": "TEXT",
        "payload": {"text": "Tea"},
        "postback": "drink=tea",
    }


def test_the_words_of_elements_not_rendered_here_are_in_the_fallback_text() -> None:
    """A platform that shows text alone, and the widget beneath a card it cannot draw whole,
    must not lose the refund's amount because it sits in a ColumnSet."""
    stored, text = rich.normalize(
        _card(
            {"type": "TextBlock", "text": "Your order"},
            {
                "type": "ColumnSet",
                "columns": [
                    {"type": "Column", "items": [{"type": "TextBlock", "text": "Refund"}]},
                    {
                        "type": "Column",
                        "items": [
                            {
                                "type": "RichTextBlock",
                                "inlines": [{"type": "TextRun", "text": "$42.00"}],
                            }
                        ],
                    },
                ],
            },
            actions=[{"type": "Action.Submit", "title": "Accept"}],
        )
    )
    assert text == "Your order\nRefund\n$42.00\n• Accept"
    view = rich.view(stored)
    assert view is not None
    assert view["complete"] is False  # the widget shows the fallback text beneath


@pytest.mark.parametrize(
    ("image", "fallback"),
    [
        ({"altText": "Your boarding pass"}, "Your boarding pass"),
        ({}, "https://example.com/qr.png"),
    ],
)
def test_an_image_only_card_has_a_fallback_text(image: dict[str, str], fallback: str) -> None:
    _stored, text = rich.normalize(
        _card({"type": "Image", "url": "https://example.com/qr.png", **image})
    )
    assert text == fallback
