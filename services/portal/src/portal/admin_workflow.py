"""Admin: ticket types with statuses and transitions, fields, automations, SLA policies and business hours."""

from fastapi import FastAPI

from portal.pagekit import Portal
from portal.settings import Settings


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
