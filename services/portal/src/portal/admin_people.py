"""Admin: users, groups and roles, mailboxes, templates and signatures, settings.

Each page saves to the part of the helpdesk that owns the data: users and groups to the portal's own
database, mailboxes and the ticket settings to the tickets service, templates, signatures and the mail
settings to notify, the workspace's own settings to `site_settings`. Every route is for admins only.
"""

import asyncio
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, Request
from fastapi.responses import RedirectResponse, Response
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from portal.accounts import MIN_PASSWORD_LENGTH
from portal.domain import ROLES, Actor, EmailTaken, User, is_plausible_email, normalise_email
from portal.i18n import LANGUAGES, Translate, translator
from portal.pagekit import (
    AdminUser,
    PageError,
    Portal,
    language_for,
    page_router,
    render,
)
from portal.security import MAX_PASSWORD_LENGTH, new_password
from portal.service_client import ServiceNotFound, ServiceRefused
from portal.settings import Settings
from portal.site_settings import SiteSettings

log = logging.getLogger(__name__)

GROUP_KEY = re.compile(r"[a-z0-9_]{1,40}")
TEMPLATE_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,99}")
LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(-[A-Za-z]{2,4})?")
TICKET_TYPE_KEY = re.compile(r"[a-z][a-z0-9_]{0,39}")
MAX_NAME = 200
NOTIFY_MODES = {
    "email": "Email: the whole reply",
    "link": "Link: only that there is news, with the ticket's link",
    "never": "Never: no mail to customers",
}
SIGNATURE_SCOPES = {
    "general": "General",
    "mailbox": "Mailbox",
    "personal": "Personal",
    "personal_mailbox": "Personal, in one mailbox",
}
CONCURRENT_EDITS = {
    "merge": "Merge: keep both changes when they touch different fields",
    "refuse": "Refuse: the later change must reload first",
}

ADMIN_SECTIONS: tuple[tuple[str, tuple[tuple[str, str, str, str], ...]], ...] = (
    (
        "People",
        (
            ("users", "/admin/users", "Users", "Agents, light agents, admins and customers: roles, groups, access."),
            ("groups", "/admin/groups", "Groups", "The teams tickets are routed to."),
        ),
    ),
    (
        "Channels",
        (
            ("mailboxes", "/admin/mailboxes", "Mailboxes", "The addresses mail arrives at, and where it goes."),
            ("templates", "/admin/templates", "Email templates", "The mail customers and agents receive."),
            ("signatures", "/admin/signatures", "Signatures", "General, per mailbox and personal signatures."),
            ("quarantine", "/admin/quarantine", "Quarantine", "Mail that could not be read."),
        ),
    ),
    (
        "Tickets",
        (
            ("types", "/admin/types", "Ticket types", "Types with their statuses and transitions."),
            ("fields", "/admin/fields", "Fields", "Standard and custom ticket fields."),
            ("snippets", "/admin/snippets", "Snippets & reply templates", "Text agents insert in replies."),
        ),
    ),
    (
        "Automation",
        (
            ("automations", "/admin/automations", "Automations", "Triggers and rules that act on tickets."),
            ("sla", "/admin/sla", "SLA policies", "Response and resolution targets."),
            ("business-hours", "/admin/business-hours", "Business hours", "When the SLA clocks run."),
        ),
    ),
    (
        "Helpdesk",
        (
            ("settings", "/admin/settings", "Settings", "Notifications, sender, concurrent edits, attachments."),
            ("stats", "/stats", "Statistics", "Volumes, response times, SLA."),
        ),
    ),
)
"""The admin home's sections: (link id, URL, title, what it is for)."""


# Groups: a registry in the portal's database; tickets use the keys as they are.


@dataclass(frozen=True)
class Group:
    """A team tickets are routed to; staff are members through their `groups`."""

    key: str
    name: str
    description: str = ""


class GroupExists(Exception):
    """A group with this key exists already."""


class Groups(Protocol):
    """The group registry (`MongoGroups`; tests use `MemoryGroups`)."""

    async def list(self) -> list[Group]:
        """Return every group by key."""

    async def get(self, key: str) -> Group | None:
        """Return a group by key."""

    async def add(self, group: Group) -> None:
        """Store a new group; raise `GroupExists` when the key is taken."""

    async def update(self, group: Group) -> None:
        """Save a group's name and description."""

    async def delete(self, key: str) -> bool:
        """Delete a group; tell whether there was one."""


class MongoGroups:
    """The groups in the portal's `groups` collection, the key as `_id`."""

    def __init__(self, db: Any) -> None:
        self.collection = db["groups"]

    async def list(self) -> list[Group]:
        """Return every group by key."""
        return [_group(doc) async for doc in self.collection.find({}).sort("_id", ASCENDING)]

    async def get(self, key: str) -> Group | None:
        """Return a group by key."""
        doc = await self.collection.find_one({"_id": key})
        return _group(doc) if doc else None

    async def add(self, group: Group) -> None:
        """Store a new group; raise `GroupExists` when the key is taken."""
        try:
            await self.collection.insert_one({"_id": group.key, "name": group.name, "description": group.description})
        except DuplicateKeyError as exc:
            raise GroupExists(group.key) from exc

    async def update(self, group: Group) -> None:
        """Save a group's name and description."""
        await self.collection.update_one(
            {"_id": group.key}, {"$set": {"name": group.name, "description": group.description}}
        )

    async def delete(self, key: str) -> bool:
        """Delete a group; tell whether there was one."""
        return (await self.collection.delete_one({"_id": key})).deleted_count == 1


def _group(doc: Mapping[str, Any]) -> Group:
    return Group(
        key=str(doc["_id"]), name=str(doc.get("name") or doc["_id"]), description=str(doc.get("description") or "")
    )


class MemoryGroups:
    """The groups in a dict, for tests."""

    def __init__(self, groups: list[Group] | None = None) -> None:
        self.groups = {g.key: g for g in groups or []}

    async def list(self) -> list[Group]:
        """Return every group by key."""
        return [self.groups[k] for k in sorted(self.groups)]

    async def get(self, key: str) -> Group | None:
        """Return a group by key."""
        return self.groups.get(key)

    async def add(self, group: Group) -> None:
        """Store a new group; raise `GroupExists` when the key is taken."""
        if group.key in self.groups:
            raise GroupExists(group.key)
        self.groups[group.key] = group

    async def update(self, group: Group) -> None:
        """Save a group's name and description."""
        self.groups[group.key] = group

    async def delete(self, key: str) -> bool:
        """Delete a group; tell whether there was one."""
        return self.groups.pop(key, None) is not None


# Who may open these pages.


# Small helpers shared by the routes.


def _t(request: Request) -> Translate:
    return translator(language_for(request))


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _with_notice(url: str, notice: str) -> RedirectResponse:
    # Only a key travels in the URL; the page maps it to its text, so a link cannot put words on the page.
    return _see_other(f"{url}?{urlencode({'done': notice})}")


def _field_errors(exc: ServiceRefused) -> dict[str, str]:
    # A 422's locations ("subject", "config.settings.x") by their last part, the form field's name.
    return {where.rsplit(".", 1)[-1]: what for where, what in exc.locations if where}


def _line(value: str, limit: int = MAX_NAME) -> str:
    return " ".join(value.split())[:limit]


def _multiline(value: str) -> str:
    # Browsers send a textarea's line breaks as CRLF.
    return value.replace("\r\n", "\n")


async def _hash(portal: Portal, password: str) -> str:
    # argon2 takes a fraction of a second of CPU: not on the event loop.
    return await asyncio.to_thread(portal.accounts.passwords.hash, password)


USER_NOTICES = {
    "saved": "The user is saved.",
    "disabled": "The user is disabled and signed out everywhere.",
    "enabled": "The user may sign in again.",
}
GROUP_NOTICES = {"added": "The group is added.", "saved": "The group is saved.", "deleted": "The group is deleted."}
MAILBOX_NOTICES = {
    "added": "The mailbox is added.",
    "saved": "The mailbox is saved.",
    "deleted": "The mailbox is deleted.",
}
TEMPLATE_NOTICES = {"saved": "The template is saved."}
SIGNATURE_NOTICES = {"saved": "The signature is saved.", "deleted": "The signature is deleted."}
SETTINGS_NOTICES = {
    "mail": "The mail settings are saved.",
    "workspace": "The workspace settings are saved.",
    "tickets": "The ticket settings are saved.",
}


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    runtime = app.state.runtime
    if "groups" not in portal.services:
        groups = MongoGroups(runtime.db)
        portal.services["groups"] = groups
    # Every admin page's sidebar lists the sections; admin_layout.html reads them from here.
    app.state.templates.env.globals["ADMIN_SECTIONS"] = ADMIN_SECTIONS
    router = page_router()
    users = portal.accounts.users

    def notify() -> Any:
        return portal.service("notify")

    def group_store() -> Groups:
        return portal.service("groups")  # type: ignore[no-any-return]

    async def active_admins() -> list[User]:
        return [u for u in await users.list_users(role="admin") if not u.disabled]

    async def user_or_404(user_id: str) -> User:
        found = await users.by_id(user_id) if len(user_id) <= 200 else None
        if found is None:
            raise PageError(404, "User not found", "There is no such user.")
        return found

    # The admin home.

    @router.get("/admin")
    async def admin_home(request: Request, user: AdminUser) -> Response:
        return render(request, "admin_home.html", sections=ADMIN_SECTIONS)

    # Users.

    @router.get("/admin/users")
    async def user_list(request: Request, user: AdminUser, q: str = "", role: str = "", done: str = "") -> Response:
        role_filter = role if role in ROLES else ""
        found = await users.list_users(q[:200], role=role_filter or None)
        return render(
            request,
            "admin_users.html",
            people=found,
            q=q[:200],
            role_filter=role_filter,
            roles=ROLES,
            notice=USER_NOTICES.get(done, ""),
        )

    def user_form(
        request: Request,
        *,
        subject: User | None,
        all_groups: list[Group],
        values: Mapping[str, Any],
        errors: Mapping[str, str] | None = None,
        alert: str = "",
        status: int = 200,
        notice: str = "",
    ) -> Response:
        known = {g.key for g in all_groups}
        chosen = set(values.get("groups") or ())
        # Groups a user is in that the registry does not know are shown too, so saving keeps them.
        extra = sorted(chosen - known)
        return render(
            request,
            "admin_user.html",
            status,
            subject=subject,
            all_groups=all_groups,
            extra_groups=extra,
            values=values,
            errors=errors or {},
            alert=alert,
            notice=notice,
            roles=ROLES,
            min_password=MIN_PASSWORD_LENGTH,
        )

    @router.get("/admin/users/new")
    async def new_user_form(request: Request, user: AdminUser) -> Response:
        values = {"email": "", "name": "", "role": "agent", "groups": [], "organisation": "", "language": ""}
        return user_form(request, subject=None, all_groups=await group_store().list(), values=values)

    def read_user_fields(
        t: Translate, name: str, role: str, groups: list[str], organisation: str, language: str, allowed: set[str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        errors: dict[str, str] = {}
        values: dict[str, Any] = {
            "name": _line(name),
            "role": role,
            "groups": sorted({g for g in groups if g}),
            "organisation": _line(organisation),
            "language": language,
        }
        if role not in ROLES:
            errors["role"] = t("Choose a role.")
        if any(g not in allowed for g in values["groups"]):
            errors["groups"] = t("Choose groups from the list.")
        if language and language not in LANGUAGES:
            errors["language"] = t("Choose a language from the list.")
        if role != "customer":
            values["organisation"] = ""
        elif values["groups"]:
            errors["groups"] = t("Customers are in no group.")
        return values, errors

    @router.post("/admin/users")
    async def create_user(
        request: Request,
        user: AdminUser,
        email: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "",
        groups: Annotated[list[str] | None, Form()] = None,
        organisation: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
        password: Annotated[str, Form()] = "",
    ) -> Response:
        t = _t(request)
        all_groups = await group_store().list()
        values, errors = read_user_fields(
            t, name, role, groups or [], organisation, language, {g.key for g in all_groups}
        )
        address = normalise_email(email)[:320]
        values["email"] = address
        if not is_plausible_email(address):
            errors["email"] = t("Enter an email address like name@example.com.")
        if password and not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            errors["password"] = t(
                "At least {n} characters, or leave it empty for a generated one.", n=MIN_PASSWORD_LENGTH
            )
        if errors:
            return user_form(request, subject=None, all_groups=all_groups, values=values, errors=errors, status=422)
        generated = not password
        password = password or new_password()
        created = User(
            id=str(uuid.uuid4()),
            email=address,
            name=values["name"],
            role=values["role"],
            groups=tuple(values["groups"]),
            password_hash=await _hash(portal, password),
            created_at=datetime.now(UTC),
            language=values["language"],
            organisation=values["organisation"] or None,
        )
        try:
            await users.add(created)
        except EmailTaken:
            errors["email"] = t("A user with this email address exists already.")
            return user_form(request, subject=None, all_groups=all_groups, values=values, errors=errors, status=409)
        log.info("%s created user %s (%s)", user.email, created.email, created.role)
        return render(
            request,
            "admin_user_password.html",
            subject=created,
            password=password if generated else "",
            heading=t("User created"),
        )

    @router.get("/admin/users/{user_id}")
    async def edit_user_form(request: Request, user: AdminUser, user_id: str, done: str = "") -> Response:
        subject = await user_or_404(user_id)
        values = {
            "email": subject.email,
            "name": subject.name,
            "role": subject.role,
            "groups": list(subject.groups),
            "organisation": subject.organisation or "",
            "language": subject.language,
        }
        return user_form(
            request,
            subject=subject,
            all_groups=await group_store().list(),
            values=values,
            notice=USER_NOTICES.get(done, ""),
        )

    async def refuse_losing_last_admin(subject: User, *, new_role: str, disabled: bool) -> str:
        # The helpdesk must keep one admin who can sign in, or nobody could manage it any more.
        losing = subject.role == "admin" and not subject.disabled and (new_role != "admin" or disabled)
        if losing and [a.id for a in await active_admins()] == [subject.id]:
            return "This is the last active admin: make another user admin first."
        return ""

    @router.post("/admin/users/{user_id}")
    async def save_user(
        request: Request,
        user: AdminUser,
        user_id: str,
        name: Annotated[str, Form()] = "",
        role: Annotated[str, Form()] = "",
        groups: Annotated[list[str] | None, Form()] = None,
        organisation: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
    ) -> Response:
        t = _t(request)
        subject = await user_or_404(user_id)
        all_groups = await group_store().list()
        allowed = {g.key for g in all_groups} | set(subject.groups)
        values, errors = read_user_fields(t, name, role, groups or [], organisation, language, allowed)
        values["email"] = subject.email
        if errors:
            return user_form(request, subject=subject, all_groups=all_groups, values=values, errors=errors, status=422)
        refusal = await refuse_losing_last_admin(subject, new_role=values["role"], disabled=subject.disabled)
        if refusal:
            return user_form(
                request, subject=subject, all_groups=all_groups, values=values, alert=t(refusal), status=409
            )
        changed = replace(
            subject,
            name=values["name"],
            role=values["role"],
            groups=tuple(values["groups"]),
            organisation=values["organisation"] or None,
            language=values["language"],
        )
        # A new role or other groups change what the person may see: their open sessions end.
        end_sessions = changed.role != subject.role or changed.groups != subject.groups
        await users.update_user(changed, end_sessions=end_sessions)
        log.info("%s changed user %s (role %s → %s)", user.email, subject.email, subject.role, changed.role)
        return _with_notice(f"/admin/users/{quote(subject.id, safe='')}", "saved")

    @router.post("/admin/users/{user_id}/disable")
    async def disable_user(request: Request, user: AdminUser, user_id: str) -> Response:
        subject = await user_or_404(user_id)
        refusal = await refuse_losing_last_admin(subject, new_role=subject.role, disabled=True)
        if refusal:
            t = _t(request)
            raise PageError(409, t("Not disabled"), t(refusal))
        await users.update_user(replace(subject, disabled=True), end_sessions=True)
        log.info("%s disabled user %s", user.email, subject.email)
        return _with_notice(f"/admin/users/{quote(subject.id, safe='')}", "disabled")

    @router.post("/admin/users/{user_id}/enable")
    async def enable_user(request: Request, user: AdminUser, user_id: str) -> Response:
        subject = await user_or_404(user_id)
        await users.update_user(replace(subject, disabled=False), end_sessions=False)
        log.info("%s enabled user %s", user.email, subject.email)
        return _with_notice(f"/admin/users/{quote(subject.id, safe='')}", "enabled")

    @router.post("/admin/users/{user_id}/password")
    async def reset_password(request: Request, user: AdminUser, user_id: str) -> Response:
        subject = await user_or_404(user_id)
        password = new_password()
        await users.set_password_hash(subject.id, await _hash(portal, password), end_sessions=True)
        log.info("%s reset the password of %s", user.email, subject.email)
        return render(
            request, "admin_user_password.html", subject=subject, password=password, heading=_t(request)("New password")
        )

    # Groups.

    async def group_page(
        request: Request,
        *,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        alert: str = "",
        status: int = 200,
        notice: str = "",
    ) -> Response:
        registry = await group_store().list()
        members: dict[str, int] = {}
        for person in await users.list_users():
            for key in person.groups:
                members[key] = members.get(key, 0) + 1
        return render(
            request,
            "admin_groups.html",
            status,
            groups=registry,
            members=members,
            values=values,
            errors=errors,
            alert=alert,
            notice=notice,
        )

    @router.get("/admin/groups")
    async def group_list(request: Request, user: AdminUser, done: str = "") -> Response:
        return await group_page(
            request, values={"key": "", "name": "", "description": ""}, errors={}, notice=GROUP_NOTICES.get(done, "")
        )

    def read_group(t: Translate, name: str, description: str) -> tuple[dict[str, str], dict[str, str]]:
        values = {"name": _line(name, 100), "description": _line(description, 500)}
        errors = {} if values["name"] else {"name": t("Give the group a name.")}
        return values, errors

    @router.post("/admin/groups")
    async def add_group(
        request: Request,
        user: AdminUser,
        key: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
    ) -> Response:
        t = _t(request)
        values, errors = read_group(t, name, description)
        values["key"] = key.strip()[:40]
        if not GROUP_KEY.fullmatch(values["key"]):
            errors["key"] = t("1 to 40 lower-case letters, digits or _.")
        if not errors:
            try:
                await group_store().add(Group(values["key"], values["name"], values["description"]))
            except GroupExists:
                errors["key"] = t("A group with this key exists already.")
        if errors:
            return await group_page(request, values=values, errors=errors, status=422)
        log.info("%s added group %s", user.email, values["key"])
        return _with_notice("/admin/groups", "added")

    async def group_or_404(key: str) -> Group:
        found = await group_store().get(key) if GROUP_KEY.fullmatch(key) else None
        if found is None:
            raise PageError(404, "Group not found", "There is no such group.")
        return found

    async def group_edit_page(
        request: Request,
        group: Group,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        alert: str = "",
        status: int = 200,
    ) -> Response:
        members = await users.list_users(group=group.key)
        return render(
            request, "admin_group.html", status, group=group, members=members, values=values, errors=errors, alert=alert
        )

    @router.get("/admin/groups/{key}")
    async def edit_group_form(request: Request, user: AdminUser, key: str) -> Response:
        group = await group_or_404(key)
        return await group_edit_page(request, group, {"name": group.name, "description": group.description}, {})

    @router.post("/admin/groups/{key}")
    async def save_group(
        request: Request,
        user: AdminUser,
        key: str,
        name: Annotated[str, Form()] = "",
        description: Annotated[str, Form()] = "",
    ) -> Response:
        group = await group_or_404(key)
        values, errors = read_group(_t(request), name, description)
        if errors:
            return await group_edit_page(request, group, values, errors, status=422)
        await group_store().update(Group(group.key, values["name"], values["description"]))
        log.info("%s changed group %s", user.email, group.key)
        return _with_notice("/admin/groups", "saved")

    @router.post("/admin/groups/{key}/delete")
    async def delete_group(request: Request, user: AdminUser, key: str) -> Response:
        t = _t(request)
        group = await group_or_404(key)
        members = await users.list_users(group=group.key)
        if members:
            who = ", ".join(m.display_name for m in members[:10]) + (" …" if len(members) > 10 else "")
            alert = t("The group still has members: {who}. Take them out of it first.", who=who)
            values = {"name": group.name, "description": group.description}
            return await group_edit_page(request, group, values, {}, alert=alert, status=409)
        await group_store().delete(group.key)
        log.info("%s deleted group %s", user.email, group.key)
        return _with_notice("/admin/groups", "deleted")

    # Mailboxes: the tickets service keeps them; ingest reads them from there.

    async def ticket_types(actor: Actor) -> list[dict[str, Any]]:
        answer = await portal.tickets.call("GET", "/api/config", actor)
        return list((answer or {}).get("config", {}).get("types") or [])

    async def mailbox_page(
        request: Request,
        user: User,
        *,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        alert: str = "",
        status: int = 200,
        notice: str = "",
        editing: dict[str, Any] | None = None,
    ) -> Response:
        actor = Actor.of(user)
        boxes, types, registry = await asyncio.gather(
            portal.tickets.call("GET", "/api/mailboxes", actor), ticket_types(actor), group_store().list()
        )
        return render(
            request,
            "admin_mailbox.html" if editing else "admin_mailboxes.html",
            status,
            mailboxes=boxes or [],
            types=types,
            groups=registry,
            values=values,
            errors=errors,
            alert=alert,
            notice=notice,
            editing=editing,
        )

    @router.get("/admin/mailboxes")
    async def mailbox_list(request: Request, user: AdminUser, done: str = "") -> Response:
        values = {"address": "", "name": "", "type": "", "group": ""}
        return await mailbox_page(request, user, values=values, errors={}, notice=MAILBOX_NOTICES.get(done, ""))

    def read_mailbox(t: Translate, name: str, kind: str, group: str) -> tuple[dict[str, str], dict[str, str]]:
        values = {"name": _line(name, 100), "type": kind, "group": group}
        errors: dict[str, str] = {}
        if not values["name"]:
            errors["name"] = t("Give the mailbox a name: its mail is sent from it.")
        if not TICKET_TYPE_KEY.fullmatch(kind):
            errors["type"] = t("Choose a ticket type.")
        if group and not GROUP_KEY.fullmatch(group):
            errors["group"] = t("Choose a group from the list.")
        return values, errors

    async def put_mailbox(user: User, address: str, values: Mapping[str, str]) -> None:
        body = {"name": values["name"], "type": values["type"], "group": values["group"] or None}
        await portal.tickets.call("PUT", f"/api/mailboxes/{quote(address, safe='@')}", Actor.of(user), json=body)

    @router.post("/admin/mailboxes")
    async def add_mailbox(
        request: Request,
        user: AdminUser,
        address: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        type: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
        group: Annotated[str, Form()] = "",
    ) -> Response:
        t = _t(request)
        values, errors = read_mailbox(t, name, type, group)
        values["address"] = normalise_email(address)[:320]
        if not is_plausible_email(values["address"]) or "/" in values["address"]:
            errors["address"] = t("Enter an email address like support@example.com.")
        else:
            existing = await portal.tickets.call("GET", "/api/mailboxes", Actor.of(user))
            if any(m.get("address") == values["address"] for m in existing or []):
                errors["address"] = t("This mailbox exists already; edit it in the list.")
        if not errors:
            try:
                await put_mailbox(user, values["address"], values)
            except ServiceRefused as exc:
                errors = _field_errors(exc) or {"": exc.message}
        if errors:
            return await mailbox_page(request, user, values=values, errors=errors, alert=errors.get("", ""), status=422)
        log.info("%s added mailbox %s", user.email, values["address"])
        return _with_notice("/admin/mailboxes", "added")

    async def mailbox_or_404(user: User, address: str) -> dict[str, Any]:
        boxes = await portal.tickets.call("GET", "/api/mailboxes", Actor.of(user))
        found = next((m for m in boxes or [] if m.get("address") == address.lower()), None)
        if found is None:
            raise PageError(404, "Mailbox not found", "There is no such mailbox.")
        return dict(found)

    @router.get("/admin/mailboxes/{address}")
    async def edit_mailbox_form(request: Request, user: AdminUser, address: str) -> Response:
        box = await mailbox_or_404(user, address)
        values = {
            "name": str(box.get("name") or ""),
            "type": str(box.get("type") or ""),
            "group": str(box.get("group") or ""),
        }
        return await mailbox_page(request, user, values=values, errors={}, editing=box)

    @router.post("/admin/mailboxes/{address}")
    async def save_mailbox(
        request: Request,
        user: AdminUser,
        address: str,
        name: Annotated[str, Form()] = "",
        type: Annotated[str, Form()] = "",  # noqa: A002 - the form field's name
        group: Annotated[str, Form()] = "",
    ) -> Response:
        box = await mailbox_or_404(user, address)
        values, errors = read_mailbox(_t(request), name, type, group)
        if not errors:
            try:
                await put_mailbox(user, box["address"], values)
            except ServiceRefused as exc:
                errors = _field_errors(exc) or {"": exc.message}
        if errors:
            return await mailbox_page(
                request, user, values=values, errors=errors, alert=errors.get("", ""), status=422, editing=box
            )
        log.info("%s changed mailbox %s", user.email, box["address"])
        return _with_notice("/admin/mailboxes", "saved")

    @router.post("/admin/mailboxes/{address}/delete")
    async def delete_mailbox(request: Request, user: AdminUser, address: str) -> Response:
        box = await mailbox_or_404(user, address)
        try:
            await portal.tickets.call("DELETE", f"/api/mailboxes/{quote(box['address'], safe='@')}", Actor.of(user))
        except ServiceRefused as exc:
            values = {
                "name": str(box.get("name") or ""),
                "type": str(box.get("type") or ""),
                "group": str(box.get("group") or ""),
            }
            return await mailbox_page(
                request, user, values=values, errors={}, alert=exc.message, status=409, editing=box
            )
        log.info("%s deleted mailbox %s", user.email, box["address"])
        return _with_notice("/admin/mailboxes", "deleted")

    # Email templates: notify keeps them.

    @router.get("/admin/templates")
    async def template_list(request: Request, user: AdminUser, done: str = "") -> Response:
        templates = await notify().call("GET", "/templates")
        by_key: dict[str, list[str]] = {}
        subjects: dict[str, str] = {}
        for item in templates or []:
            by_key.setdefault(str(item.get("key")), []).append(str(item.get("language")))
            if item.get("language") == "en" or str(item.get("key")) not in subjects:
                subjects[str(item.get("key"))] = str(item.get("subject") or "")
        return render(
            request,
            "admin_templates.html",
            by_key={k: sorted(v) for k, v in sorted(by_key.items())},
            subjects=subjects,
            notice=TEMPLATE_NOTICES.get(done, ""),
        )

    def template_path(key: str, language: str) -> str:
        if not TEMPLATE_KEY.fullmatch(key) or not LANGUAGE_CODE.fullmatch(language):
            raise PageError(404, "Template not found", "There is no such template.")
        return f"/templates/{key}/{language}"

    @router.get("/admin/templates/new")
    async def new_template(request: Request, user: AdminUser, key: str = "", language: str = "") -> Response:
        template_path(key.strip(), language.strip())  # a malformed key or language is a 404 page
        return _see_other(f"/admin/templates/{key.strip()}/{language.strip()}")

    @router.get("/admin/templates/{key}/{language}")
    async def edit_template(request: Request, user: AdminUser, key: str, language: str) -> Response:
        path = template_path(key, language)
        try:
            found = await notify().call("GET", path)
            is_new = False
        except ServiceNotFound:
            found, is_new = {}, True
        values = {
            "subject": str(found.get("subject") or ""),
            "text": str(found.get("text") or ""),
            "html": str(found.get("html") or ""),
        }
        return render(
            request,
            "admin_template.html",
            key=key,
            language=language,
            values=values,
            errors={},
            alert="",
            is_new=is_new,
        )

    @router.post("/admin/templates/{key}/{language}")
    async def save_template(
        request: Request,
        user: AdminUser,
        key: str,
        language: str,
        subject: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "",
        html: Annotated[str, Form()] = "",
    ) -> Response:
        path = template_path(key, language)
        values = {"subject": subject.strip(), "text": _multiline(text), "html": _multiline(html)}
        body = {"subject": values["subject"], "text": values["text"], "html": values["html"] or None}
        try:
            await notify().call("PUT", path, json=body)
        except ServiceRefused as exc:
            errors = _field_errors(exc)
            alert = "" if errors else exc.message
            return render(
                request,
                "admin_template.html",
                422,
                key=key,
                language=language,
                values=values,
                errors=errors,
                alert=alert,
                is_new=False,
            )
        log.info("%s saved email template %s/%s", user.email, key, language)
        return _with_notice("/admin/templates", "saved")

    # Signatures: notify keeps them, in four layers.

    async def signature_page(
        request: Request,
        user: User,
        *,
        values: Mapping[str, str],
        errors: Mapping[str, str],
        alert: str = "",
        status: int = 200,
        notice: str = "",
    ) -> Response:
        signatures, boxes, staff = await asyncio.gather(
            notify().call("GET", "/signatures"),
            portal.tickets.call("GET", "/api/mailboxes", Actor.of(user)),
            users.staff(),
        )
        names = {s.id: s.display_name for s in staff}
        return render(
            request,
            "admin_signatures.html",
            status,
            signatures=signatures or [],
            mailboxes=[str(m.get("address")) for m in boxes or []],
            staff=sorted(staff, key=lambda s: s.display_name.lower()),
            names=names,
            scopes=SIGNATURE_SCOPES,
            values=values,
            errors=errors,
            alert=alert,
            notice=notice,
        )

    @router.get("/admin/signatures")
    async def signature_list(
        request: Request,
        user: AdminUser,
        done: str = "",
        scope: str = "",
        mailbox: str = "",
        user_id: str = "",
        language: str = "",
    ) -> Response:
        values = {"scope": "general", "mailbox": "", "user_id": "", "language": "", "text": "", "html": ""}
        if scope in SIGNATURE_SCOPES:
            # "Edit": the form is filled from the signature of that layer, if there is one.
            values.update(scope=scope, mailbox=mailbox, user_id=user_id, language=language)
            signatures = await notify().call("GET", "/signatures", params={"scope": scope})
            for s in signatures or []:
                key = (s.get("mailbox") or "", s.get("user_id") or "", s.get("language") or "")
                if key == (mailbox.lower(), user_id, language):
                    values.update(text=str(s.get("text") or ""), html=str(s.get("html") or ""))
        return await signature_page(request, user, values=values, errors={}, notice=SIGNATURE_NOTICES.get(done, ""))

    @router.post("/admin/signatures")
    async def save_signature(
        request: Request,
        user: AdminUser,
        scope: Annotated[str, Form()] = "",
        mailbox: Annotated[str, Form()] = "",
        user_id: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "",
        html: Annotated[str, Form()] = "",
    ) -> Response:
        t = _t(request)
        values = {
            "scope": scope,
            "mailbox": mailbox.strip(),
            "user_id": user_id.strip(),
            "language": language,
            "text": _multiline(text).strip("\n"),
            "html": _multiline(html).strip(),
        }
        errors: dict[str, str] = {}
        if scope not in SIGNATURE_SCOPES:
            errors["scope"] = t("Choose where the signature applies.")
        if not values["text"].strip():
            errors["text"] = t("Write the signature's text.")
        if errors:
            return await signature_page(request, user, values=values, errors=errors, status=422)
        mailbox_scoped = scope in ("mailbox", "personal_mailbox")
        personal = scope in ("personal", "personal_mailbox")
        body = {
            "scope": scope,
            "mailbox": values["mailbox"] if mailbox_scoped else None,
            "user_id": values["user_id"] if personal else None,
            "language": values["language"] or None,
            "text": values["text"],
            "html": values["html"] or None,
        }
        try:
            await notify().call("PUT", "/signatures", json=body)
        except ServiceRefused as exc:
            errors = _field_errors(exc)
            return await signature_page(
                request, user, values=values, errors=errors, alert="" if errors else exc.message, status=422
            )
        log.info("%s saved a %s signature", user.email, scope)
        return _with_notice("/admin/signatures", "saved")

    @router.post("/admin/signatures/delete")
    async def delete_signature(
        request: Request,
        user: AdminUser,
        scope: Annotated[str, Form()] = "",
        mailbox: Annotated[str, Form()] = "",
        user_id: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
    ) -> Response:
        if scope not in SIGNATURE_SCOPES:
            raise PageError(404, "Signature not found", "There is no such signature.")
        params = {"scope": scope} | {
            k: v for k, v in (("mailbox", mailbox), ("user_id", user_id), ("language", language)) if v
        }
        try:
            await notify().call("DELETE", "/signatures", params=params)
        except ServiceRefused as exc:
            raise PageError(422, "Not deleted", exc.message) from None
        log.info("%s deleted a %s signature", user.email, scope)
        return _with_notice("/admin/signatures", "deleted")

    # Settings: one page, each section saved to its owner.

    async def settings_page(
        request: Request, user: User, *, alerts: Mapping[str, str] | None = None, status: int = 200, notice: str = ""
    ) -> Response:
        mail, site, tickets_config = await asyncio.gather(
            notify().call("GET", "/settings"),
            portal.service("site_settings").get(),
            portal.tickets.call("GET", "/api/config", Actor.of(user)),
        )
        mail = mail or {}
        greetings = dict(mail.get("closing_greeting") or {})
        for code in LANGUAGES:
            greetings.setdefault(code, "")
        config = (tickets_config or {}).get("config") or {}
        return render(
            request,
            "admin_settings.html",
            status,
            mail=mail,
            greetings=greetings,
            has_from_name="from_name" in mail,
            notify_modes=NOTIFY_MODES,
            site=site,
            ticket_settings=config.get("settings") or {},
            config_version=(tickets_config or {}).get("version", ""),
            concurrent_edits=CONCURRENT_EDITS,
            alerts=alerts or {},
            notice=notice,
        )

    @router.get("/admin/settings")
    async def settings_form(request: Request, user: AdminUser, done: str = "") -> Response:
        return await settings_page(request, user, notice=SETTINGS_NOTICES.get(done, ""))

    @router.post("/admin/settings/mail")
    async def save_mail_settings(request: Request, user: AdminUser) -> Response:
        t = _t(request)
        form = await request.form()
        current = await notify().call("GET", "/settings") or {}
        mode = str(form.get("notify_mode") or "")
        if mode not in NOTIFY_MODES:
            return await settings_page(request, user, alerts={"mail": t("Choose a notify mode.")}, status=422)
        greetings = dict(current.get("closing_greeting") or {})
        for code in set(greetings) | set(LANGUAGES):
            value = form.get(f"closing_{code}")
            if isinstance(value, str):
                if value.strip():
                    greetings[code] = _line(value)
                else:
                    greetings.pop(code, None)
        body: dict[str, Any] = {**current, "notify_mode": mode, "closing_greeting": greetings}
        if "from_name" in current:
            body["from_name"] = _line(str(form.get("from_name") or ""), 100)
        try:
            await notify().call("PUT", "/settings", json=body)
        except ServiceRefused as exc:
            return await settings_page(request, user, alerts={"mail": exc.message}, status=422)
        log.info("%s saved the mail settings", user.email)
        return _with_notice("/admin/settings", "mail")

    @router.post("/admin/settings/workspace")
    async def save_workspace_settings(
        request: Request, user: AdminUser, confirm_before_send: Annotated[str, Form()] = ""
    ) -> Response:
        store = portal.service("site_settings")
        current: SiteSettings = await store.get()
        await store.put(replace(current, confirm_before_send=confirm_before_send == "on"))
        log.info("%s saved the workspace settings", user.email)
        return _with_notice("/admin/settings", "workspace")

    @router.post("/admin/settings/tickets")
    async def save_ticket_settings(request: Request, user: AdminUser) -> Response:
        t = _t(request)
        form = await request.form()
        version = str(form.get("version") or "")
        if not version.isdigit():
            raise PageError(400, "Form incomplete", "This form is missing a part. Reload the page and try again.")
        actor = Actor.of(user)
        answer = await portal.tickets.call("GET", "/api/config", actor) or {}
        config = dict(answer.get("config") or {})
        changed = dict(config.get("settings") or {})
        edits = str(form.get("concurrent_edits") or "")
        if edits not in CONCURRENT_EDITS:
            return await settings_page(
                request, user, alerts={"tickets": t("Choose how concurrent edits are handled.")}, status=422
            )
        changed["concurrent_edits"] = edits
        changed["customers_see_organisation"] = form.get("customers_see_organisation") == "on"
        if "close_children_with_parent" in changed:
            changed["close_children_with_parent"] = form.get("close_children_with_parent") == "on"
        if "attachment_limit_mb" in changed:
            limit = str(form.get("attachment_limit_mb") or "").strip()
            if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
                alert = t("The attachment limit is a whole number of megabytes, at least 1.")
                return await settings_page(request, user, alerts={"tickets": alert}, status=422)
            changed["attachment_limit_mb"] = int(limit)
        config["settings"] = changed
        try:
            # The version the form was made from: a change saved by someone else since is a 409, not overwritten.
            await portal.tickets.call("PUT", "/api/config", actor, json={"version": int(version), "config": config})
        except ServiceRefused as exc:
            if exc.status == 409:
                alert = t("The ticket settings were changed by someone else meanwhile. Reload the page and try again.")
            else:
                alert = exc.message
            return await settings_page(request, user, alerts={"tickets": alert}, status=exc.status)
        log.info("%s saved the ticket settings", user.email)
        return _with_notice("/admin/settings", "tickets")

    app.include_router(router)


__all__ = ["ADMIN_SECTIONS", "Group", "GroupExists", "Groups", "MemoryGroups", "MongoGroups", "setup"]
