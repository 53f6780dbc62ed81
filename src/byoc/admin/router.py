"""`/admin/v1`: business-initiated conversations. Bearer `BYOC_ADMIN_TOKEN`; off while unset."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from byoc.api.deps import ConversationsDep, SettingsDep
from byoc.compare import bearer_matches
from byoc.errors import NotFound, Unauthenticated

router = APIRouter(prefix="/admin/v1", tags=["Admin API"])


async def admin_caller(request: Request, settings: SettingsDep) -> None:
    expected = settings.admin_token.get_secret_value()
    if not expected:
        raise NotFound("the admin API is disabled (set BYOC_ADMIN_TOKEN)")
    if not bearer_matches(request.headers.get("authorization", ""), expected):
        raise Unauthenticated("the admin bearer token is missing or wrong")


Admin = Annotated[None, Depends(admin_caller)]


class OutboundBody(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    customer_id: str = Field(
        alias="customerId",
        min_length=1,
        description="The platform's user id, or the middleware's customer id (cus_…).",
    )
    text: str = Field(min_length=1, max_length=10_000)
    author: dict[str, Any] | None = Field(
        default=None, description='Shown as the sender, e.g. {"firstName": "Support"}.'
    )


class OutboundStarted(BaseModel):
    threadId: str
    messageId: str
    customerId: str


@router.post("/channels/{channel_id}/outbound", status_code=201, response_model=OutboundStarted)
async def start_outbound(
    channel_id: str, body: OutboundBody, conversations: ConversationsDep, _admin: Admin
) -> OutboundStarted:
    delivered = await conversations.open_business_outbound(
        channel_id, body.customer_id, body.text, body.author
    )
    return OutboundStarted(
        threadId=delivered.conversation.id,
        messageId=delivered.message.id,
        customerId=delivered.customer.id,
    )
