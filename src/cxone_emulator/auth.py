"""CXone's token endpoint, discovery documents and the bearer check of the DE API (§3.1)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, params
from starlette.responses import JSONResponse

from cxone_emulator.errors import CxoneError
from cxone_emulator.state import EmulatorState
from cxone_emulator.urls import root_url


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        user, sep, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


def _unsigned_jwt(claims: dict[str, object]) -> str:
    """An `alg: none` JWT: enough for a middleware that reads claims, useless as a credential."""

    def part(data: dict[str, object]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def build_auth_router(state: EmulatorState) -> APIRouter:
    config = state.config
    router = APIRouter()

    @router.post("/auth/token")
    async def issue_token(request: Request) -> JSONResponse:
        credentials = _basic_credentials(request)
        if credentials != (config.client_id, config.client_secret):
            return _oauth_error(401, "invalid_client", "unknown client or bad client secret")
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "password":
            return _oauth_error(400, "unsupported_grant_type", "only grant_type=password")
        if (form.get("username"), form.get("password")) != (
            config.access_key_id,
            config.access_key_secret,
        ):
            return _oauth_error(400, "invalid_grant", "unknown access key or bad secret")
        token = state.tokens.issue(config.token_ttl_seconds)
        now = int(time.time())
        root = root_url(request, config)
        id_token = _unsigned_jwt(
            {
                "iss": root,
                "sub": f"user:{config.agent_user_id}",
                "aud": config.client_id,
                "iat": now,
                "exp": now + int(config.token_ttl_seconds),
                "tenantId": config.tenant_id,
                "area": config.area,
            }
        )
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": int(config.token_ttl_seconds),
                "id_token": id_token,
            }
        )

    @router.get("/.well-known/openid-configuration")
    async def openid_configuration(request: Request) -> JSONResponse:
        root = root_url(request, config)
        return JSONResponse({"issuer": root, "token_endpoint": f"{root}/auth/token"})

    @router.get("/.well-known/cxone-configuration")
    async def cxone_configuration(request: Request) -> JSONResponse:
        tenant_id = request.query_params.get("tenantId")
        if not tenant_id:
            raise CxoneError(400, "tenantId: is required", "MissingField", "tenantId")
        if tenant_id != config.tenant_id:
            raise CxoneError(404, "tenant not found", "TenantNotFound", "tenantId")
        root = root_url(request, config)
        return JSONResponse(
            {
                "tenantId": config.tenant_id,
                "area": config.area,
                "domain": config.domain,
                "api_endpoint": root,
                "auth_endpoint": root,
                "ui_endpoint": root,
                "token_endpoint": f"{root}/auth/token",
                "de_api_base": root + config.base_path,
            }
        )

    return router


def bearer_dependency(state: EmulatorState) -> params.Depends:
    """A FastAPI dependency that refuses a missing, unknown or expired bearer token."""

    async def require_bearer(request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise CxoneError(401, "missing bearer token", "Unauthorized")
        if not state.tokens.is_valid(token.strip()):
            raise CxoneError(401, "invalid or expired token", "Unauthorized")

    dependency: params.Depends = Depends(require_bearer)
    return dependency
