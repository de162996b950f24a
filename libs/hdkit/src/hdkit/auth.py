"""The internal bearer token that services use to call each other's HTTP APIs."""

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="The shared service token (HELPDESK_SERVICE_TOKEN).")


def require_service_token(token: str) -> Callable[..., None]:
    """Return a FastAPI dependency that accepts only `Authorization: Bearer <token>`."""
    expected = token.encode()

    def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
        given = credentials.credentials.encode() if credentials else b""
        if not hmac.compare_digest(given, expected):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, "missing or wrong service token", {"WWW-Authenticate": "Bearer"}
            )

    return check
