"""The internal bearer token that services use to call each other's HTTP APIs."""

import hmac
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Header, HTTPException, status


def require_service_token(token: str) -> Callable[..., Coroutine[Any, Any, None]]:
    """Return a FastAPI dependency that refuses requests without `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    async def check(authorization: str = Header(default="")) -> None:
        if not hmac.compare_digest(authorization.encode(), expected):
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "a valid service token is required")

    return check
