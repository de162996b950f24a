"""The ticket page's tools: fields, contact, merge/link/split/follow, reply templates, snippets, @mentions.

The agent's ticket page (/tickets/{n}) and every form on it live here; the tickets service checks every
command again, so the portal's checks are for clear messages and for not sending what will be refused.
"""

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, cast
from urllib.parse import quote

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response
from markupsafe import Markup, escape
from pymongo.errors import PyMongoError

from portal.automation_log import AutomationEntry, automation_entries, merged_log
from portal.domain import COMMENT_KINDS, MAX_COMMENT_LENGTH, ROLE_LABELS, Actor, User, can_assign, comment_kinds, label
from portal.i18n import translator
from portal.pagekit import (
    AdminUser,
    AgentUser,
    PageError,
    Portal,
    StaffUser,
    command_id_of,
    language_for,
    new_command_id,
    page_router,
    render,
    sentence,
    ticket_number_of,
    version_of,
)
from portal.service_client import ServiceNotFound, ServiceRefused, ServiceUnavailable
from portal.settings import Settings
from portal.snippets import KINDS, InvalidSnippet, MongoSnippets, Snippet, Snippets, fill, snippet_of
from portal.tickets_client import CommandRefused, CommentKind, TicketDetail, TicketNotFound, TicketSummary
from portal.triggers_client import TriggersUnavailable
from portal.uploads import AttachmentRefused, attach_chosen
from portal.web import AGENT_TICKET_CSP, Draft, _comment_text, _description_is_separate, _download, _files

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRINGS_SHOWN = 100
OTHER_TICKETS_SHOWN = 10
MENTIONS_SHOWN = 10
MAX_MENTION_QUERY = 50
MAX_TAGS_TEXT = 2000
KEY_FIELDS = ("status", "priority", "type", "category", "group", "handler")
"""Fields the form sends as a key; an empty one means none (only category, group and handler may be empty)."""
EMPTY_ALLOWED = frozenset({"category", "group", "handler"})
NUMBER = re.compile(r"[1-9][0-9]{0,11}")
ATTRIBUTION = re.compile(r"^\s*(On\b.*\bwrote:|Den\b.*\bskrev:)\s*$", re.I)
QUOTE_TAG = re.compile(r"<(/?)blockquote\b[^>]*>", re.I)
HANDLER_CHANGE = re.compile(r"^handler: (\S+) → (\S+)(.*)$", re.S)


# --------------------------------------------------------------------------- quoted history


def quote_parts(text: str) -> list[tuple[bool, str]]:
    """Return a plain-text message as (is quoted history, text) parts: '>' lines and 'On … wrote:' blocks."""
    parts: list[tuple[bool, list[str]]] = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        quoted = line.lstrip().startswith(">")
        if ATTRIBUTION.match(line):
            # An attribution starts the quoted history when quoted lines (or nothing but blanks) follow it.
            rest = [x for x in lines[i + 1 :] if x.strip()]
            quoted = not rest or rest[0].lstrip().startswith(">")
        if not line.strip() and parts and parts[-1][0]:
            following = next((x for x in lines[i + 1 :] if x.strip()), None)
            quoted = following is not None and following.lstrip().startswith(">")
        if parts and parts[-1][0] == quoted:
            parts[-1][1].append(line)
        else:
            parts.append((quoted, [line]))
    return [(q, "\n".join(ls).strip("\n")) for q, ls in parts if "\n".join(ls).strip()]


def fold_html_quotes(html: Markup, summary: str) -> Markup:
    """Return sanitised HTML with each outermost blockquote folded in a <details> with this summary."""
    # Only clean_html's output is trusted as markup; anything else is escaped first, so no tag can slip in.
    text = str(html) if isinstance(html, Markup) else str(escape(html))
    # nh3's output escapes every '<' that is not a tag, so each match is a real tag.
    out: list[str] = []
    depth, start, last = 0, 0, 0
    for match in QUOTE_TAG.finditer(text):
        closing = match.group(1) == "/"
        if not closing:
            if depth == 0:
                start = match.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                out.append(text[last:start])
                out.append(f'<details class="quoted"><summary>{escape(summary)}</summary>')
                out.append(text[start : match.end()])
                out.append("</details>")
                last = match.end()
    out.append(text[last:])
    return Markup("".join(out))  # noqa: S704 - sanitised input, our own fixed markup around it


# --------------------------------------------------------------------------- the fields form


@dataclass(frozen=True)
class Choice:
    """One option of a select."""

    key: str
    name: str


@dataclass(frozen=True)
class CustomField:
    """A custom field as the form shows it."""

    key: str
    name: str
    kind: str
    options: tuple[str, ...] = ()
    required: bool = False

    @property
    def form_name(self) -> str:
        """The name of the field in the form and in the PATCH body."""
        return f"custom.{self.key}"


@dataclass(frozen=True)
class FieldOptions:
    """What the fields form offers, from the tickets service's configuration and the staff list."""

    statuses: list[Choice]
    priorities: list[Choice]
    types: list[Choice]
    categories: list[Choice]
    category_used: bool
    required: frozenset[str]
    groups: list[Choice]
    handlers: list[Choice]
    custom: list[CustomField]


def _choices(items: Any) -> list[Choice]:
    return [Choice(str(i["key"]), str(i.get("name") or i["key"])) for i in items or [] if isinstance(i, Mapping)]


def _with_current(choices: list[Choice], current: str | None) -> list[Choice]:
    # A value the configuration no longer offers still shows, so saving other fields keeps it.
    if current and current not in {c.key for c in choices}:
        return [Choice(current, label(current, {})), *choices]
    return choices


def field_options(config: Mapping[str, Any], ticket: TicketDetail, staff: list[User]) -> FieldOptions:
    """Return the form's options: the statuses the ticket's type allows from its status, pick-lists, staff."""
    types = [t for t in config.get("types", []) if isinstance(t, Mapping)]
    own = next((t for t in types if t.get("key") == ticket.type), None)
    statuses = _choices(own.get("statuses")) if own else []
    transitions = own.get("transitions", {}) if own else {}
    allowed = transitions.get(ticket.status) if isinstance(transitions, Mapping) else None
    if allowed is not None:
        statuses = [s for s in statuses if s.key == ticket.status or s.key in allowed]
    rules = config.get("fields", {}) if isinstance(config.get("fields"), Mapping) else {}
    required = frozenset(k for k, r in rules.items() if isinstance(r, Mapping) and r.get("required"))
    custom = [
        CustomField(
            key=str(c["key"]),
            name=str(c.get("name") or c["key"]),
            kind=str(c.get("kind", "text")),
            options=tuple(str(o) for o in c.get("options", [])),
            required=bool(c.get("required")),
        )
        for c in config.get("custom_fields", [])
        if isinstance(c, Mapping) and c.get("used", True)
    ]
    category_rule = rules.get("category", {}) if isinstance(rules.get("category", {}), Mapping) else {}
    groups = sorted({g for u in staff for g in u.groups} | ({ticket.group} if ticket.group else set()))
    handlers = sorted(((u.id, u.display_name) for u in staff if u.role in ("admin", "agent")), key=lambda x: x[1])
    return FieldOptions(
        statuses=_with_current(statuses, ticket.status),
        priorities=_with_current(_choices(config.get("priorities")), ticket.priority),
        types=_with_current(_choices(types), ticket.type),
        categories=_with_current(_choices(config.get("categories")), ticket.category),
        category_used=bool(category_rule.get("used", True)) and bool(config.get("categories") or ticket.category),
        required=required,
        groups=[Choice(g, label(g, {})) for g in groups],
        handlers=_with_current([Choice(i, n) for i, n in handlers], ticket.handler),
        custom=custom,
    )


def _custom_text(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind == "checkbox":
        return "true" if value is True else ""
    return str(value)


def form_values(ticket: TicketDetail, custom: Iterable[CustomField]) -> dict[str, str]:
    """Return the ticket's field values as the form holds them (strings; tags comma-separated)."""
    values = {
        "status": ticket.status,
        "priority": ticket.priority,
        "type": ticket.type,
        "category": ticket.category or "",
        "group": ticket.group or "",
        "handler": ticket.handler or "",
        "tags": ", ".join(ticket.tags),
    }
    for c in custom:
        values[c.form_name] = _custom_text(c.kind, ticket.custom.get(c.key))
    return values


class BadFieldValue(Exception):
    """A value typed in the fields form that cannot be sent (e.g. letters in a number field)."""


def _api_value(name: str, text: str, custom: Mapping[str, CustomField]) -> Any:
    if name == "tags":
        return [tag for tag in re.split(r"[,\s]+", text) if tag]
    if name in KEY_FIELDS:
        return text or None
    kind = custom[name].kind
    if kind == "checkbox":
        return text == "true"
    if not text.strip():
        return None
    if kind == "number":
        try:
            number = float(text.strip())
        except ValueError:
            raise BadFieldValue(f"{custom[name].name} must be a number.") from None
        return int(number) if number.is_integer() else number
    return text.strip() if kind in ("date", "pick_list") else text


def changed_fields(
    submitted: Mapping[str, str], shown: Mapping[str, str], custom: Iterable[CustomField]
) -> dict[str, Any]:
    """Return the fields the agent changed in the form (submitted ≠ shown), as the PATCH body's values."""
    by_name = {c.form_name: c for c in custom}
    changed: dict[str, Any] = {}
    for name in (*KEY_FIELDS, "tags", *by_name):
        if name not in shown:
            continue
        new, old = submitted.get(name, ""), shown[name]
        if name == "tags":
            new, old = ", ".join(_api_value("tags", new, by_name)), ", ".join(_api_value("tags", old, by_name))
        if new == old or (name in KEY_FIELDS and not new and name not in EMPTY_ALLOWED):
            continue
        changed[name] = _api_value(name, new, by_name)
    return changed


@dataclass(frozen=True)
class ChangedMeanwhile:
    """A field someone else changed while the agent had the form open."""

    name: str
    theirs: str
    by: str


def changed_meanwhile(
    ticket: TicketDetail, shown: Mapping[str, str], now: Mapping[str, str], names: Mapping[str, str]
) -> list[ChangedMeanwhile]:
    """Return the fields whose value differs from what the form showed, and who changed each last."""
    found = []
    for name, before in shown.items():
        current = now.get(name, "")
        if current == before:
            continue
        by = next(
            (
                a.actor.display_name
                for a in reversed(ticket.activity)
                if isinstance(a.detail, str) and a.detail.startswith(f"{name}:")
            ),
            ticket.last_updated_by.display_name if ticket.last_updated_by else "",
        )
        shown_value = names.get(current, current) if name == "handler" else current
        found.append(ChangedMeanwhile(name=name, theirs=shown_value or "—", by=by))
    return found


# --------------------------------------------------------------------------- the page


@dataclass
class PageState:
    """What a page shown again after a form keeps: messages per panel and what the agent typed."""

    status: int = 200
    alert: str = ""
    draft: Draft | None = None
    errors: dict[str, str] = field(default_factory=dict)
    """A refusal's reason by panel: fields, merge, link, split, follow."""
    fields_values: dict[str, str] | None = None
    fields_shown: dict[str, str] | None = None
    conflict: list[ChangedMeanwhile] | None = None
    merge_into: int | None = None
    template_key: str = ""


async def _optional(read: Awaitable[T], what: str) -> T | None:
    # The page's helpers (field options, contact, snippets): without one the ticket still shows.
    try:
        return await read
    except (ServiceUnavailable, ServiceRefused, PyMongoError, TriggersUnavailable) as exc:
        log.warning("showing the ticket page without %s: %s", what, exc)
        return None
    except ServiceNotFound:
        return None


def _names_in_activity(ticket: TicketDetail) -> set[str]:
    ids: set[str] = set()
    for a in ticket.activity:
        match = HANDLER_CHANGE.match(a.detail) if isinstance(a.detail, str) else None
        if match:
            ids |= {match.group(1), match.group(2)} - {"—"}
    return ids


def _activity_detail(names: Mapping[str, str]) -> Callable[[Any], Any]:
    def show(detail: Any) -> Any:
        match = HANDLER_CHANGE.match(detail) if isinstance(detail, str) else None
        if not match:
            return detail
        old, new, rest = match.groups()
        return f"handler: {names.get(old, old)} → {names.get(new, new)}{rest}"

    return show


def setup(app: FastAPI, portal: Portal, settings: Settings) -> None:
    """Add this area's pages to the app and its clients to `portal.services` (unless tests put fakes there)."""
    if "snippets" not in portal.services:
        store = MongoSnippets(app.state.runtime.db)
        app.state.runtime.on_start.append(store.ensure_indexes)
        portal.services["snippets"] = store
    env = app.state.templates.env
    env.filters["quote_parts"] = quote_parts
    env.filters["fold_html_quotes"] = fold_html_quotes
    app.include_router(build_router(portal))


def build_router(portal: Portal) -> Any:  # noqa: C901 - one closure per route, like web.build_router
    """Return the router of the ticket page, its forms, @mentions and the snippets admin page."""
    router = page_router()

    async def snippets_of() -> list[Snippet]:
        store: Snippets | None = portal.services.get("snippets")
        if store is None:
            return []
        return await _optional(store.all(), "snippets") or []

    async def confirm_before_send() -> bool:
        store = portal.services.get("site_settings")
        if store is None:
            return False
        found = await _optional(store.get(), "the portal's settings")
        return bool(found and found.confirm_before_send)

    async def automations_of(ticket: TicketDetail) -> list[AutomationEntry] | None:
        # The firing log is for staff only, and a help: without it the page still shows the ticket.
        try:
            return automation_entries(await portal.triggers.firings(ticket.ticket_id, limit=FIRINGS_SHOWN))
        except TriggersUnavailable as exc:
            log.warning("showing ticket #%s without its automation log: %s", ticket.number, exc)
            return None

    async def config_of(actor: Actor) -> dict[str, Any] | None:
        answer = await _optional(portal.tickets.call("GET", "/api/config", actor), "the ticket configuration")
        config = answer.get("config") if isinstance(answer, Mapping) else None
        return config if isinstance(config, dict) else None

    async def other_tickets(actor: Actor, ticket: TicketDetail) -> list[TicketSummary] | None:
        if ticket.requester is None:
            return []
        params = {"view": "all", "requester": ticket.requester.email, "limit": OTHER_TICKETS_SHOWN + 1}
        answer = await _optional(portal.tickets.call("GET", "/api/tickets", actor, params=params), "other tickets")
        if not isinstance(answer, Mapping):
            return None
        items = [TicketSummary.model_validate(i) for i in answer.get("items", []) if isinstance(i, Mapping)]
        return [i for i in items if i.number != ticket.number][:OTHER_TICKETS_SHOWN]

    async def contact_of(actor: Actor, ticket: TicketDetail) -> dict[str, Any] | None:
        if ticket.requester is None:
            return None
        path = f"/api/contacts/{quote(ticket.requester.email, safe='@+')}"
        found = await _optional(portal.tickets.call("GET", path, actor), "the contact")
        return found if isinstance(found, dict) else None

    async def show_ticket(request: Request, user: User, number: int, state: PageState | None = None) -> Response:
        state = state or PageState()
        t = translator(language_for(request))
        actor = Actor.of(user)
        ticket, config, staff, snippets, confirm = await asyncio.gather(
            portal.tickets.get_ticket(actor, number),
            config_of(actor),
            portal.accounts.users.staff(),
            snippets_of(),
            confirm_before_send(),
        )
        automations, others, contact, merge_target = await asyncio.gather(
            automations_of(ticket),
            other_tickets(actor, ticket),
            contact_of(actor, ticket),
            merge_target_of(actor, ticket, state),
        )
        ids = {i for i in [ticket.handler, *ticket.followers] if i} | _names_in_activity(ticket)
        names = {u.id: u.display_name for u in staff} | await portal.accounts.users.names(ids - {u.id for u in staff})
        options = field_options(config, ticket, staff) if config is not None else None
        shown = form_values(ticket, options.custom if options else [])
        kinds = comment_kinds(user.role)
        draft = state.draft or Draft()
        draft_text = draft.text
        values = {
            "ticket.number": str(ticket.number),
            "ticket.title": ticket.title,
            "customer.name": (ticket.requester.name or ticket.requester.email) if ticket.requester else "",
            "agent.name": user.display_name,
        }
        files = _files(ticket, f"/tickets/{ticket.number}/attachments/")
        picked = next((s for s in snippets if s.key == state.template_key), None)
        if picked is not None and not draft_text:
            draft_text = fill(picked.text, values)
        response = render(
            request,
            "ticket.html",
            state.status,
            ticket=ticket,
            log_entries=merged_log(ticket.activity, automations or []),
            automation_log_unavailable=automations is None,
            show_detail=_activity_detail(names),
            handler_name=names.get(ticket.handler or "", ticket.handler or ""),
            show_description=_description_is_separate(ticket.description, ticket.comments),
            may_assign=can_assign(user.role) and ticket.handler != user.id,
            may_edit=can_assign(user.role),
            assign_command=new_command_id(),
            kinds=kinds,
            reply_command=new_command_id(),
            draft_text=draft_text,
            draft_kind=draft.kind if draft.kind in kinds else next(iter(kinds), ""),
            alert=state.alert,
            errors=state.errors,
            options=options,
            shown=state.fields_shown or shown,
            values=state.fields_values or shown,
            conflict=state.conflict or [],
            fields_command=new_command_id(),
            names=names,
            others=others,
            contact=contact,
            following=user.id in ticket.followers,
            follow_command=new_command_id(),
            merge_target=merge_target,
            merge_command=new_command_id(),
            link_command=new_command_id(),
            split_command=new_command_id(),
            snippets=[(s, fill(s.text, values)) for s in snippets],
            snippet_kinds=KINDS,
            template_key=state.template_key,
            confirm_message=t("Send this public reply to the customer?") if confirm else "",
            files_by_id={a.attachment_id: (a, url) for a, url in files["files"]},
            **files,
        )
        response.headers["Content-Security-Policy"] = AGENT_TICKET_CSP
        return response

    async def merge_target_of(actor: Actor, ticket: TicketDetail, state: PageState) -> TicketDetail | None:
        if state.merge_into is None or "merge" in state.errors:
            return None
        try:
            return await portal.tickets.get_ticket(actor, state.merge_into)
        except TicketNotFound:
            state.errors["merge"] = f"There is no ticket #{state.merge_into} you may see."
            return None

    def refused(exc: ServiceRefused | CommandRefused) -> str:
        return sentence(exc.message)

    # ----------------------------------------------------------------- routes

    @router.get("/tickets/mentions")
    async def mentions(user: StaffUser, q: str = "") -> JSONResponse:
        # For @mention completion in internal comments; the tickets service resolves @handle itself.
        needle = q.strip().lstrip("@").lower()[:MAX_MENTION_QUERY]
        found = []
        for u in sorted(await portal.accounts.users.staff(), key=lambda u: u.display_name.lower()):
            handle = u.email.split("@", 1)[0]
            if not needle or handle.lower().startswith(needle) or needle in u.display_name.lower():
                found.append({"handle": handle, "name": u.display_name})
            if len(found) == MENTIONS_SHOWN:
                break
        return JSONResponse(found, headers={"Cache-Control": "no-store"})

    @router.get("/tickets/{number}")
    async def ticket_detail(
        request: Request, user: StaffUser, number: str, template: str = "", merge_into: str = ""
    ) -> Response:
        state = PageState(template_key=template[:40])
        if merge_into:
            target = merge_into.strip().lstrip("#")
            if not NUMBER.fullmatch(target) or int(target) == int(number if number.isdigit() else 0):
                state.errors["merge"] = "Give the number of another ticket to merge into."
            else:
                state.merge_into = int(target)
        return await show_ticket(request, user, ticket_number_of(number), state)

    @router.post("/tickets/{number}/assign")
    async def assign_to_me(
        request: Request,
        user: StaffUser,
        number: str,
        command_id: Annotated[str, Form()] = "",
        version: Annotated[str, Form()] = "",
    ) -> Response:
        ticket_number = ticket_number_of(number)
        command = command_id_of(command_id)
        if not can_assign(user.role):
            alert = "Not assigned: light agents cannot take tickets. Ask an agent or an admin to assign it."
            return await show_ticket(request, user, ticket_number, PageState(status=403, alert=alert))
        try:
            await portal.tickets.update_ticket(
                Actor.of(user),
                ticket_number,
                {"handler": user.id},
                command_id=command,
                expected_version=version_of(version),
            )
        except CommandRefused as exc:
            alert = translator(language_for(request))("Not assigned: {why}", why=sentence(exc.message))
            return await show_ticket(request, user, ticket_number, PageState(status=exc.status, alert=alert))
        log.info("%s took ticket #%s", user.email, ticket_number)
        return RedirectResponse(f"/tickets/{ticket_number}", status_code=303)

    @router.post("/tickets/{number}/fields")
    async def save_fields(request: Request, user: AgentUser, number: str) -> Response:
        ticket_number = ticket_number_of(number)
        form = await request.form()
        command = command_id_of(str(form.get("command_id", "")))
        expected = version_of(str(form.get("version", "")))
        submitted = {k: str(v) for k, v in form.multi_items() if not k.startswith("was.") and isinstance(v, str)}
        shown = {k[4:]: str(v) for k, v in form.multi_items() if k.startswith("was.") and isinstance(v, str)}
        custom = [
            CustomField(key=k.removeprefix("custom."), name=k.removeprefix("custom."), kind=kind)
            for k, kind in ((k, str(form.get(f"kind.{k}", "text"))) for k in shown if k.startswith("custom."))
        ]
        t = translator(language_for(request))

        async def again(status: int, error: str = "", conflict: list[ChangedMeanwhile] | None = None) -> Response:
            state = PageState(status=status, fields_values=submitted, fields_shown=shown, conflict=conflict)
            if error:
                state.errors["fields"] = error
            return await show_ticket(request, user, ticket_number, state)

        try:
            changes = changed_fields(submitted, shown, custom)
        except BadFieldValue as exc:
            return await again(422, t("Not saved: {reason}", reason=str(exc)))
        if not changes:
            return RedirectResponse(f"/tickets/{ticket_number}", status_code=303)
        actor = Actor.of(user)
        try:
            await portal.tickets.update_ticket(
                actor, ticket_number, changes, command_id=command, expected_version=expected
            )
        except CommandRefused as exc:
            current = await portal.tickets.get_ticket(actor, ticket_number)
            if exc.status == 409 and expected is not None and current.version != expected:
                staff = await portal.accounts.users.staff()
                names = {u.id: u.display_name for u in staff}
                now = form_values(current, custom)
                conflict = changed_meanwhile(current, shown, now, names)
                log.info("%s's field change on ticket #%s met a newer version", user.email, ticket_number)
                # The form keeps the agent's values; saving again applies them over the newer ticket.
                state = PageState(status=409, fields_values=submitted, fields_shown=now, conflict=conflict)
                state.errors["fields"] = t("Not saved: someone changed this ticket while you were editing it.")
                return await show_ticket(request, user, ticket_number, state)
            return await again(exc.status, t("Not saved: {reason}", reason=refused(exc)))
        log.info("%s changed %s of ticket #%s", user.email, ", ".join(sorted(changes)), ticket_number)
        return RedirectResponse(f"/tickets/{ticket_number}", status_code=303)

    async def ticket_command(
        request: Request,
        user: User,
        number: str,
        panel: str,
        path: str,
        body: dict[str, Any],
    ) -> Any:
        """Send one command of the page's tools; a refusal is shown next to its form (raised as a page)."""
        ticket_number = ticket_number_of(number)
        try:
            return await portal.tickets.call("POST", f"/api/tickets/{ticket_number}/{path}", Actor.of(user), json=body)
        except ServiceRefused as exc:
            t = translator(language_for(request))
            state = PageState(status=exc.status)
            state.errors[panel] = t("Not done: {reason}", reason=refused(exc))
            raise _Shown(await show_ticket(request, user, ticket_number, state)) from None

    @router.post("/tickets/{number}/merge")
    async def merge(
        request: Request,
        user: AgentUser,
        number: str,
        into: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
        version: Annotated[str, Form()] = "",
    ) -> Response:
        command = command_id_of(command_id)
        target = into.strip().lstrip("#")
        if not NUMBER.fullmatch(target) or target == number:
            state = PageState(status=422)
            state.errors["merge"] = "Give the number of another ticket to merge into."
            return await show_ticket(request, user, ticket_number_of(number), state)
        body: dict[str, Any] = {"command_id": command, "into": int(target)}
        if version_of(version) is not None:
            body["expected_version"] = version_of(version)
        try:
            await ticket_command(request, user, number, "merge", "merge", body)
        except _Shown as shown:
            return shown.response
        log.info("%s merged ticket #%s into #%s", user.email, number, target)
        return RedirectResponse(f"/tickets/{int(target)}", status_code=303)

    @router.post("/tickets/{number}/link")
    async def link(
        request: Request,
        user: AgentUser,
        number: str,
        parent: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
    ) -> Response:
        command = command_id_of(command_id)
        target = parent.strip().lstrip("#")
        if target and (not NUMBER.fullmatch(target) or target == number):
            state = PageState(status=422)
            state.errors["link"] = "Give the number of another ticket as the parent."
            return await show_ticket(request, user, ticket_number_of(number), state)
        try:
            await ticket_command(
                request,
                user,
                number,
                "link",
                "link",
                {"command_id": command, "parent": int(target) if target else None},
            )
        except _Shown as shown:
            return shown.response
        log.info("%s linked ticket #%s to parent %s", user.email, number, target or "(none)")
        return RedirectResponse(f"/tickets/{ticket_number_of(number)}", status_code=303)

    @router.post("/tickets/{number}/split")
    async def split(request: Request, user: AgentUser, number: str) -> Response:
        form = await request.form()
        command = command_id_of(str(form.get("command_id", "")))
        comment_ids = [str(c) for c in form.getlist("comment_ids") if isinstance(c, str) and c][:500]
        title = str(form.get("title", "")).strip()[:1000]
        if not comment_ids:
            state = PageState(status=422)
            state.errors["split"] = "Choose the messages that start the new ticket."
            return await show_ticket(request, user, ticket_number_of(number), state)
        body: dict[str, Any] = {"command_id": command, "comment_ids": comment_ids}
        if title:
            body["title"] = title
        try:
            answer = await ticket_command(request, user, number, "split", "split", body)
        except _Shown as shown:
            return shown.response
        new = answer.get("number") if isinstance(answer, Mapping) else None
        log.info("%s split %d messages of ticket #%s into #%s", user.email, len(comment_ids), number, new)
        target = new if isinstance(new, int) else ticket_number_of(number)
        return RedirectResponse(f"/tickets/{target}", status_code=303)

    @router.post("/tickets/{number}/follow")
    async def follow(
        request: Request,
        user: StaffUser,
        number: str,
        follow: Annotated[str, Form()] = "true",
        command_id: Annotated[str, Form()] = "",
    ) -> Response:
        command = command_id_of(command_id)
        try:
            await ticket_command(
                request, user, number, "follow", "follow", {"command_id": command, "follow": follow == "true"}
            )
        except _Shown as shown:
            return shown.response
        return RedirectResponse(f"/tickets/{ticket_number_of(number)}", status_code=303)

    @router.post("/tickets/{number}/comments")
    async def add_comment(
        request: Request,
        user: StaffUser,
        number: str,
        text: Annotated[str, Form()] = "",
        kind: Annotated[str, Form()] = "",
        command_id: Annotated[str, Form()] = "",
        files: Annotated[list[UploadFile | str], File()] = [],  # noqa: B006 - FastAPI copies defaults
    ) -> Response:
        ticket_number = ticket_number_of(number)
        command = command_id_of(command_id)
        text = _comment_text(text)
        draft = Draft(text=text, kind=kind)
        kinds = comment_kinds(user.role)

        t = translator(language_for(request))

        async def refuse(status: int, why: str) -> Response:
            state = PageState(status=status, alert=t("Not sent: {why}", why=why), draft=draft)
            return await show_ticket(request, user, ticket_number, state)

        if kind not in COMMENT_KINDS:
            return await refuse(422, t("choose Public reply or Internal comment."))
        if kind not in kinds:
            role = label(user.role, ROLE_LABELS).lower()
            allowed = " or ".join(kinds.values()).lower()
            return await refuse(403, t("a {role} may write {kinds}s only.", role=t(role), kinds=t(allowed)))
        if not text.strip():
            return await refuse(422, t("write something first."))
        if len(text) > MAX_COMMENT_LENGTH:
            return await refuse(422, t("a comment may be at most {n} characters long.", n=f"{MAX_COMMENT_LENGTH:,}"))
        try:
            attachments = await attach_chosen(portal, files, uploaded_by=user.email, t=t)
        except AttachmentRefused as exc:
            return await refuse(422, exc.reason)
        try:
            await portal.tickets.add_comment(
                Actor.of(user),
                ticket_number,
                kind=cast(CommentKind, kind),  # one of COMMENT_KINDS, checked above
                text=text,
                command_id=command,
                attachments=attachments,
            )
        except CommandRefused as exc:
            return await refuse(exc.status, sentence(exc.message))
        log.info("%s added a %s to ticket #%s", user.email, kind, ticket_number)
        return RedirectResponse(f"/tickets/{ticket_number}", status_code=303)

    @router.get("/tickets/{number}/attachments/{attachment_id}")
    async def ticket_attachment(user: StaffUser, number: str, attachment_id: str) -> Response:
        ticket = await portal.tickets.get_ticket(Actor.of(user), ticket_number_of(number))
        # Only a file of the ticket the agent may see is fetched; ingest itself checks no user.
        if attachment_id not in {a.attachment_id for a in ticket.attachments}:
            raise PageError(404, "Attachment not found", "This ticket has no such attachment.")
        return _download(await portal.ingest.attachment(attachment_id))

    # ----------------------------------------------------------------- snippets admin

    def snippets_store() -> Snippets:
        return cast(Snippets, portal.service("snippets"))

    async def snippets_page(
        request: Request, *, status: int = 200, editing: Snippet | None = None, error: str = "", saved: str = ""
    ) -> Response:
        return render(
            request,
            "snippets_admin.html",
            status,
            snippets=await snippets_store().all(),
            editing=editing,
            error=error,
            saved=saved,
            kinds=KINDS,
        )

    @router.get("/admin/snippets")
    async def list_snippets(request: Request, user: AdminUser, edit: str = "", saved: str = "") -> Response:
        editing = await snippets_store().get(edit) if edit else None
        return await snippets_page(request, editing=editing, saved=saved[:40])

    @router.post("/admin/snippets")
    async def save_snippet(
        request: Request,
        user: AdminUser,
        key: Annotated[str, Form()] = "",
        name: Annotated[str, Form()] = "",
        kind: Annotated[str, Form()] = "",
        language: Annotated[str, Form()] = "",
        text: Annotated[str, Form()] = "",
    ) -> Response:
        try:
            snippet = snippet_of(key, name, kind, text, language)
        except InvalidSnippet as exc:
            typed = Snippet(
                key=key[:40], name=name[:100], kind="template" if kind == "template" else "snippet", text=text
            )
            t = translator(language_for(request))
            return await snippets_page(request, status=422, editing=typed, error=t(str(exc)))
        await snippets_store().put(snippet)
        log.info("%s saved the %s %r", user.email, snippet.kind, snippet.key)
        return RedirectResponse(f"/admin/snippets?saved={quote(snippet.key)}", status_code=303)

    @router.post("/admin/snippets/{key}/delete")
    async def delete_snippet(user: AdminUser, key: str) -> Response:
        if await snippets_store().delete(key):
            log.info("%s deleted the snippet %r", user.email, key)
        return RedirectResponse("/admin/snippets", status_code=303)

    return router


class _Shown(Exception):
    """A command was refused and the page showing why is ready (carried out of a helper)."""

    def __init__(self, response: Response) -> None:
        super().__init__("refused")
        self.response = response


__all__ = [
    "BadFieldValue",
    "ChangedMeanwhile",
    "FieldOptions",
    "build_router",
    "changed_fields",
    "changed_meanwhile",
    "field_options",
    "fold_html_quotes",
    "form_values",
    "quote_parts",
    "setup",
]
