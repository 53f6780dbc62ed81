"""Domain errors: what went wrong, in the middleware's own terms.

    ByocError
    ├── InvalidInput          the request is well-formed but cannot be acted on
    │   ├── RecipientRejected an outbound recipient the platform does not know
    │   ├── IdempotencyKeyReused  a key an earlier, different request used
    │   ├── InvalidRichContent  a rich message over a bound or with a non-http(s) URL
    │   ├── AttachmentGone    a message naming an upload that is no longer there
    │   ├── TooLarge          an upload over the channel's limit
    │   └── UnsupportedType   an upload of a type the channel does not accept
    ├── NotFound              a channel, conversation, message or customer that does not exist
    ├── ConversationEnded     a message to a conversation that is over
    ├── Unauthenticated       a missing, expired or forged credential
    ├── Forbidden             a valid credential acting outside its tenant
    │   └── ForbiddenOrigin   a page whose origin the channel does not allow
    └── RateLimited           too many requests for now
        └── QuotaExceeded     an upload over a storage quota

Each carries a stable `slug`; the API layer maps the classes to HTTP in one place
(`byoc.api.problems`). Nothing below the API layer knows about status codes.
"""

from __future__ import annotations


class ByocError(Exception):
    slug = "error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidInput(ByocError):
    slug = "invalid-input"


class RecipientRejected(InvalidInput):
    slug = "recipient-rejected"

    def __init__(self, detail: str, recipient_id: str) -> None:
        super().__init__(detail)
        self.recipient_id = recipient_id


class IdempotencyKeyReused(InvalidInput):
    slug = "idempotency-key-reused"


class InvalidRichContent(InvalidInput):
    slug = "invalid-rich-content"


class AttachmentGone(InvalidInput):
    slug = "attachment-gone"


class TooLarge(InvalidInput):
    slug = "payload-too-large"


class UnsupportedType(InvalidInput):
    slug = "unsupported-media-type"


class NotFound(ByocError):
    slug = "not-found"


class ChannelNotFound(NotFound):
    slug = "channel-not-found"


class ConversationNotFound(NotFound):
    slug = "conversation-not-found"


class CustomerNotFound(NotFound):
    slug = "customer-not-found"


class MessageNotFound(NotFound):
    slug = "message-not-found"


class ConversationEnded(ByocError):
    slug = "conversation-ended"


class Unauthenticated(ByocError):
    slug = "unauthenticated"


class Forbidden(ByocError):
    slug = "forbidden"


class ForbiddenOrigin(Forbidden):
    slug = "forbidden-origin"


class RateLimited(ByocError):
    slug = "rate-limited"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class QuotaExceeded(RateLimited):
    slug = "upload-quota-exceeded"
