"""The customer portal: sign-in by password or magic link, own and organisation tickets, new requests, replies."""

from fastapi import FastAPI

from portal.pagekit import Portal
from portal.settings import Settings


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
