"""The HTML of the Action, Reconnect and Remove URL pages (`byoc.provisioning.action_pages`):
server-rendered, without scripts, every value escaped, and headers that keep the one-time
token in their URLs from leaking (no caching, no referrer)."""

from __future__ import annotations

from collections.abc import Iterable
from html import escape

from fastapi.responses import HTMLResponse, RedirectResponse, Response

from byoc.channels import ADAPTERS, WEBHOOK
from byoc.provisioning.form_tokens import FormClaims

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'",
}


_STYLE = """
body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1d2330}
main{max-width:34rem;margin:3rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px;
box-shadow:0 1px 3px rgba(0,0,0,.12)}
h1{font-size:1.3rem;margin-top:0}label{display:block;margin:.9rem 0 .2rem;font-weight:600}
input,select{width:100%;box-sizing:border-box;padding:.45rem;border:1px solid #b8bfcc;
border-radius:4px;font:inherit}
button{margin-top:1.2rem;padding:.55rem 1.2rem;border:0;border-radius:4px;background:#2259c7;
color:#fff;font:inherit;cursor:pointer}
.error{color:#a3121b}.muted{color:#5b6475;font-size:.9em}code{word-break:break-all}
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def error_page(title: str, message: str, status: int) -> HTMLResponse:
    return page(title, f"<p class=error data-testid=error>{escape(message)}</p>", status)


def finished(back_url: str, title: str, message: str) -> Response:
    """303 to `back_url`, which `channels.back_url_of` allowed; the result's page without it."""
    if back_url:
        return RedirectResponse(back_url, status_code=303, headers=SECURITY_HEADERS)
    return page(title, f"<p data-testid=done>{escape(message)}</p>")


def _options(values: Iterable[str], selected: str) -> str:
    return "".join(
        f'<option value="{escape(v)}"{" selected" if v == selected else ""}>{escape(v)}</option>'
        for v in values
    )


def form_page(
    token: str,
    claims: FormClaims,
    *,
    name: str = "",
    adapter: str = WEBHOOK,
    webhook_url: str = "",
    allowed_origins: str = "",
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    errors = errors or {}

    def error(field: str) -> str:
        text = errors.get(field)
        return (
            f'<p class=error data-testid="error-{escape(field)}">{escape(text)}</p>' if text else ""
        )

    general = "".join(
        f"<p class=error data-testid=error>{escape(f'{k}: {v}')}</p>"
        for k, v in errors.items()
        if k not in ("name", "adapter", "webhook_url", "settings")
    )
    body = f"""
<p class=muted>Brand {claims.brand_id} · channel integration
<code>{escape(claims.integration_id)}</code></p>
{general}
<form method=post action="/integration/action">
<input type=hidden name=form_token value="{escape(token)}">
<label for=name>Channel name</label>
<input id=name name=name required maxlength=100 value="{escape(name)}" data-testid=name>
{error("name")}
<label for=adapter>Platform</label>
<select id=adapter name=adapter data-testid=adapter>{_options(ADAPTERS, adapter)}</select>
{error("adapter")}
<label for=webhook_url>Webhook URL <span class=muted>(webhook platforms only)</span></label>
<input id=webhook_url name=webhook_url type=url value="{escape(webhook_url)}"
 placeholder="https://platform.example.com/byoc" data-testid=webhook-url>
{error("webhook_url")}
<label for=allowed_origins>Allowed origins <span class=muted>(web chat only; space-separated,
 e.g. https://shop.example)</span></label>
<input id=allowed_origins name=allowed_origins value="{escape(allowed_origins)}"
 data-testid=allowed-origins>
{error("settings")}
<button type=submit data-testid=create>Create channel</button>
</form>
<p class=muted>Channel id: <code>{escape(claims.channel_id)}</code></p>
"""
    return page("Add a channel", body, status)
