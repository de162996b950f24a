"""Wiring of the portal process: runtime, user store, clients of tickets, ingest and triggers, pages."""

import logging
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from faststream.kafka import KafkaBroker
from hdkit.auth import require_service_token
from hdkit.service import build_runtime, http_app
from prometheus_client import Counter
from pymongo import AsyncMongoClient

from portal import admin_people, admin_workflow, customer_pages, stats_pages, web, workspace_lists, workspace_ticket
from portal.accounts import Accounts
from portal.domain import Users
from portal.ingest_client import Ingest, IngestClient
from portal.pagekit import Portal
from portal.security import Passwords, SessionCodec, SignInLimiter
from portal.service_client import ServiceClient
from portal.settings import Settings
from portal.site_settings import MongoSiteSettings
from portal.store import UserStore
from portal.tickets_client import Tickets, TicketsClient
from portal.triggers_client import Triggers, TriggersClient


def create_app(
    settings: Settings,
    *,
    broker: KafkaBroker | None = None,
    mongo: AsyncMongoClient[dict[str, Any]] | None = None,
    configure_logging: bool = False,
    users: Users | None = None,
    tickets: Tickets | None = None,
    ingest: Ingest | None = None,
    triggers: Triggers | None = None,
    passwords: Passwords | None = None,
    limiter: SignInLimiter | None = None,
    services: dict[str, Any] | None = None,
) -> FastAPI:
    """Return the portal app; tests hand in fakes for the user store, the services' clients and `services`."""
    rt = build_runtime("portal", settings, broker=broker, mongo=mongo, configure_logging=configure_logging)
    if configure_logging:
        # One line per call to the tickets service is noise; failures are logged by the client.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    if users is None:
        store = UserStore(rt.db)
        rt.on_start.append(store.ensure_indexes)
        users = store
    if tickets is None:
        tickets = TicketsClient(
            settings.tickets_url, settings.service_token.get_secret_value(), timeout=settings.tickets_timeout
        )
    rt.on_stop.append(tickets.aclose)
    if ingest is None:
        ingest = IngestClient(
            settings.ingest_url, settings.service_token.get_secret_value(), timeout=settings.ingest_timeout
        )
    rt.on_stop.append(ingest.aclose)
    if triggers is None:
        triggers = TriggersClient(
            settings.triggers_url, settings.service_token.get_secret_value(), timeout=settings.triggers_timeout
        )
    rt.on_stop.append(triggers.aclose)
    sign_ins = Counter("helpdesk_portal_sign_ins", "Sign-in attempts by outcome.", ["outcome"], registry=rt.metrics)
    portal = Portal(
        accounts=Accounts(users, passwords or Passwords(), limiter),
        tickets=tickets,
        ingest=ingest,
        triggers=triggers,
        sessions=SessionCodec(settings.session_secret.get_secret_value()),
        cookie_secure=settings.cookie_secure,
        sign_ins=sign_ins,
        public_url=settings.public_url,
        services=dict(services or {}),
    )
    if "notify" not in portal.services:
        portal.services["notify"] = ServiceClient(
            "notify", settings.notify_url, settings.service_token.get_secret_value(), timeout=settings.notify_timeout
        )
    rt.on_stop.append(portal.services["notify"].aclose)
    portal.services.setdefault("site_settings", MongoSiteSettings(rt.db))
    app = http_app(rt, title="helpdesk portal", description="The agent workspace: sign-in, queues, tickets.")
    app.state.runtime = rt
    app.state.portal = portal
    web.install(app, portal)
    for area in (workspace_lists, workspace_ticket, customer_pages, admin_people, admin_workflow, stats_pages):
        area.setup(app, portal, settings)
    app.include_router(staff_api(users, settings.service_token.get_secret_value()))
    return app


def staff_api(users: Users, token: str) -> APIRouter:
    """Return the internal API other services read the staff from (service token only)."""
    router = APIRouter(prefix="/internal", tags=["internal"], dependencies=[Depends(require_service_token(token))])

    @router.get("/staff", summary="Admins, agents and light agents who are not disabled: id, email, name, role.")
    async def staff() -> list[dict[str, Any]]:
        return [
            {"id": u.id, "email": u.email, "name": u.name, "role": u.role, "groups": list(u.groups)}
            for u in await users.staff()
        ]

    return router
