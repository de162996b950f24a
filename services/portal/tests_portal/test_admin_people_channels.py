"""Admin pages for channels and settings: mailboxes (tickets), email templates and signatures (notify), settings."""

from collections.abc import Iterator
from typing import Any

import pytest
from portal.security import Passwords
from portal.service_client import ServiceRefused
from portal.settings import Settings

from .conftest import PHRASE, add_user, sign_in
from .fakes import FakeUsers
from .test_admin_people_users import AGENT_EMAIL, Admin, build_admin

CONFIG = {
    "version": 7,
    "config": {
        "types": [{"key": "question", "name": "Question"}, {"key": "fault", "name": "Fault"}],
        "priorities": [{"key": "medium", "name": "Medium"}],
        "settings": {"concurrent_edits": "merge", "customers_see_organisation": False},
    },
}
MAILBOXES = [{"address": "support@example.com", "name": "Support", "type": "question", "group": "support"}]


@pytest.fixture
def admin(settings: Settings, users: FakeUsers, passwords: Passwords) -> Iterator[Admin]:
    add_user(users, passwords, AGENT_EMAIL, PHRASE, "agent", name="Bo Berg", groups=("support",))
    for found in build_admin(settings, users, passwords):
        found.tickets.api.route("GET", "/api/mailboxes", MAILBOXES)
        found.tickets.api.route("GET", "/api/config", CONFIG)
        assert sign_in(found.client).status_code == 303
        yield found


def writes(service: Any) -> list[tuple[str, str, Any, Any]]:
    return [c for c in service.calls if c[0] != "GET"]


# Mailboxes.


def test_the_mailbox_page_lists_the_tickets_mailboxes_and_says_where_credentials_live(admin: Admin) -> None:
    page = admin.client.get("/admin/mailboxes")
    assert page.status_code == 200
    assert "support@example.com" in page.text and "Question" in page.text
    assert "environment" in page.text and "every few minutes" in page.text


def test_an_admin_adds_a_mailbox_through_the_tickets_service(admin: Admin) -> None:
    admin.tickets.api.route("PUT", "/api/mailboxes/billing@example.com", lambda json, **_: json)
    form = {"address": "Billing@Example.com", "name": "Billing", "type": "fault", "group": "billing"}
    response = admin.post("/admin/mailboxes", form)
    assert response.status_code == 303
    assert writes(admin.tickets.api) == [
        ("PUT", "/api/mailboxes/billing@example.com", {}, {"name": "Billing", "type": "fault", "group": "billing"})
    ]


def test_a_mailbox_that_exists_already_is_not_added_again(admin: Admin) -> None:
    response = admin.post("/admin/mailboxes", {"address": "support@example.com", "name": "S", "type": "question"})
    assert response.status_code == 422 and "exists already" in response.text
    assert writes(admin.tickets.api) == []


def test_a_refusal_of_the_tickets_service_is_shown_at_its_field(admin: Admin) -> None:
    def refuse(**_: Any) -> None:
        raise ServiceRefused(422, "type: not a ticket type", [("type", "not a ticket type; known: question")])

    admin.tickets.api.route("PUT", "/api/mailboxes/new@example.com", refuse)
    response = admin.post("/admin/mailboxes", {"address": "new@example.com", "name": "New <b>", "type": "gone"})
    assert response.status_code == 422
    assert "not a ticket type; known: question" in response.text
    assert 'value="New &lt;b&gt;"' in response.text


def test_an_admin_edits_and_deletes_a_mailbox(admin: Admin) -> None:
    admin.tickets.api.route("PUT", "/api/mailboxes/support@example.com", lambda json, **_: json)
    admin.tickets.api.route("DELETE", "/api/mailboxes/support@example.com", lambda **_: None)
    page = admin.client.get("/admin/mailboxes/support@example.com")
    assert page.status_code == 200 and 'value="Support"' in page.text
    saved = admin.post("/admin/mailboxes/support@example.com", {"name": "Help", "type": "fault", "group": ""})
    assert saved.status_code == 303
    assert writes(admin.tickets.api)[-1][3] == {"name": "Help", "type": "fault", "group": None}


def test_deleting_the_last_mailbox_shows_the_tickets_services_reason(admin: Admin) -> None:
    def refuse(**_: Any) -> None:
        raise ServiceRefused(409, "the last mailbox cannot be deleted; add another first")

    admin.tickets.api.route("DELETE", "/api/mailboxes/support@example.com", refuse)
    response = admin.post("/admin/mailboxes/support@example.com/delete")
    assert response.status_code == 409 and "the last mailbox cannot be deleted" in response.text


def test_an_unknown_mailbox_is_a_404(admin: Admin) -> None:
    assert admin.client.get("/admin/mailboxes/nobody@example.com").status_code == 404


# Email templates.

TEMPLATES = [
    {"key": "agent_reply", "language": "en", "subject": "Re: {{ ticket.title }}", "text": "Hi", "html": None},
    {"key": "agent_reply", "language": "sv", "subject": "Sv: {{ ticket.title }}", "text": "Hej", "html": None},
]


def test_templates_are_listed_by_key_with_their_languages(admin: Admin) -> None:
    admin.notify.route("GET", "/templates", TEMPLATES)
    page = admin.client.get("/admin/templates")
    assert page.status_code == 200
    assert 'id="template-agent_reply-en"' in page.text and 'id="template-agent_reply-sv"' in page.text
    assert "Re: {{ ticket.title }}" in page.text


def test_an_admin_edits_a_template_and_it_is_saved_to_notify(admin: Admin) -> None:
    admin.notify.route("GET", "/templates/agent_reply/en", TEMPLATES[0])
    admin.notify.route("PUT", "/templates/agent_reply/en", lambda json, **_: json)
    page = admin.client.get("/admin/templates/agent_reply/en")
    assert page.status_code == 200 and "Re: {{ ticket.title }}" in page.text
    form = {"subject": "Re: {{ ticket.title }} [ok]", "text": "Hello\r\nthere", "html": ""}
    assert admin.post("/admin/templates/agent_reply/en", form).status_code == 303
    assert writes(admin.notify) == [
        (
            "PUT",
            "/templates/agent_reply/en",
            {},
            {"subject": "Re: {{ ticket.title }} [ok]", "text": "Hello\nthere", "html": None},
        )
    ]


def test_a_template_mistake_is_shown_at_its_field_and_the_text_is_kept(admin: Admin) -> None:
    def refuse(**_: Any) -> None:
        raise ServiceRefused(422, "text: unexpected end of template", [("text", "text: unexpected end of template")])

    admin.notify.route("PUT", "/templates/agent_reply/en", refuse)
    form = {"subject": "Re", "text": "{% if x %}unclosed", "html": ""}
    page = admin.post("/admin/templates/agent_reply/en", form)
    assert page.status_code == 422
    assert 'id="template-text-error">text: unexpected end of template' in page.text
    assert "{% if x %}unclosed" in page.text


def test_a_template_in_a_new_language_starts_empty(admin: Admin) -> None:
    page = admin.client.get("/admin/templates/agent_reply/de")
    assert page.status_code == 200 and 'id="template-is-new"' in page.text


def test_a_malformed_template_key_is_a_404_and_notify_is_not_asked(admin: Admin) -> None:
    assert admin.client.get("/admin/templates/Bad Key/en").status_code == 404
    assert admin.client.get("/admin/templates/new", params={"key": "../x", "language": "en"}).status_code == 404
    assert admin.notify.calls == []


# Signatures.

SIGNATURES = [
    {"scope": "general", "mailbox": None, "user_id": None, "language": None, "text": "The <Helpdesk>", "html": None},
    {
        "scope": "mailbox",
        "mailbox": "support@example.com",
        "user_id": None,
        "language": "sv",
        "text": "Support",
        "html": None,
    },
]


def test_signatures_are_listed_with_their_scope_and_escaped(admin: Admin) -> None:
    admin.notify.route("GET", "/signatures", SIGNATURES)
    page = admin.client.get("/admin/signatures")
    assert page.status_code == 200
    assert "The &lt;Helpdesk&gt;" in page.text and "support@example.com" in page.text


def test_a_personal_signature_is_saved_for_the_chosen_agent(admin: Admin) -> None:
    admin.notify.route("GET", "/signatures", [])
    admin.notify.route("PUT", "/signatures", lambda json, **_: json)
    bo = admin.user(AGENT_EMAIL)
    form = {"scope": "personal", "mailbox": "support@example.com", "user_id": bo.id, "language": "sv", "text": "Bo\r\n"}
    assert admin.post("/admin/signatures", form).status_code == 303
    assert writes(admin.notify)[-1][3] == {
        "scope": "personal",
        "mailbox": None,
        "user_id": bo.id,
        "language": "sv",
        "text": "Bo",
        "html": None,
    }


def test_a_signature_refused_by_notify_shows_the_reason_at_the_field(admin: Admin) -> None:
    admin.notify.route("GET", "/signatures", [])

    def refuse(**_: Any) -> None:
        raise ServiceRefused(422, "mailbox: a mailbox signature needs a mailbox", [("mailbox", "needs a mailbox")])

    admin.notify.route("PUT", "/signatures", refuse)
    page = admin.post("/admin/signatures", {"scope": "mailbox", "text": "Hi"})
    assert page.status_code == 422 and 'id="signature-mailbox-error">needs a mailbox' in page.text


def test_an_admin_deletes_a_signature(admin: Admin) -> None:
    admin.notify.route("DELETE", "/signatures", lambda **_: None)
    form = {"scope": "mailbox", "mailbox": "support@example.com", "language": "sv"}
    assert admin.post("/admin/signatures/delete", form).status_code == 303
    assert writes(admin.notify) == [
        ("DELETE", "/signatures", {"scope": "mailbox", "mailbox": "support@example.com", "language": "sv"}, None)
    ]


# Settings.

MAIL = {
    "notify_mode": "email",
    "closing_greeting": {"en": "Best regards,", "sv": "Vänliga hälsningar,"},
    "from_name": "",
}


def test_the_settings_page_shows_each_section_from_its_owner(admin: Admin) -> None:
    admin.notify.route("GET", "/settings", MAIL)
    page = admin.client.get("/admin/settings")
    assert page.status_code == 200
    assert 'id="notify-mode-email" checked' in page.text
    assert 'value="Vänliga hälsningar,"' in page.text
    assert 'id="settings-from-name"' in page.text
    assert 'name="version" value="7"' in page.text
    assert 'id="concurrent-edits-merge" checked' in page.text
    assert 'id="settings-attachment-limit"' not in page.text  # the tickets service has no such setting yet


def test_the_mail_settings_are_saved_to_notify(admin: Admin) -> None:
    admin.notify.route("GET", "/settings", MAIL)
    admin.notify.route("PUT", "/settings", lambda json, **_: json)
    form = {"notify_mode": "link", "closing_en": "Cheers,", "closing_sv": "", "from_name": "Acme Help"}
    assert admin.post("/admin/settings/mail", form).status_code == 303
    assert writes(admin.notify) == [
        (
            "PUT",
            "/settings",
            {},
            {"notify_mode": "link", "closing_greeting": {"en": "Cheers,"}, "from_name": "Acme Help"},
        )
    ]


def test_a_notify_without_a_from_name_gets_none_sent(admin: Admin) -> None:
    older = {k: v for k, v in MAIL.items() if k != "from_name"}
    admin.notify.route("GET", "/settings", older)
    admin.notify.route("PUT", "/settings", lambda json, **_: json)
    assert 'id="settings-from-name"' not in admin.client.get("/admin/settings").text
    admin.post("/admin/settings/mail", {"notify_mode": "never", "from_name": "Ignored"})
    assert "from_name" not in writes(admin.notify)[-1][3]


def test_confirm_before_send_is_saved_in_the_portals_settings(admin: Admin) -> None:
    assert admin.post("/admin/settings/workspace", {"confirm_before_send": "on"}).status_code == 303
    assert admin.site.settings.confirm_before_send is True
    admin.post("/admin/settings/workspace", {})
    assert admin.site.settings.confirm_before_send is False


def test_ticket_settings_change_only_the_settings_of_the_whole_config_with_its_version(admin: Admin) -> None:
    admin.tickets.api.route("PUT", "/api/config", lambda json, **_: json)
    form = {"version": "7", "concurrent_edits": "refuse", "customers_see_organisation": "on"}
    assert admin.post("/admin/settings/tickets", form).status_code == 303
    ((_, _, _, body),) = writes(admin.tickets.api)
    assert body["version"] == 7
    assert body["config"]["types"] == CONFIG["config"]["types"]
    assert body["config"]["settings"] == {"concurrent_edits": "refuse", "customers_see_organisation": True}


def test_ticket_settings_changed_meanwhile_ask_the_admin_to_reload(admin: Admin) -> None:
    admin.notify.route("GET", "/settings", MAIL)

    def stale(**_: Any) -> None:
        raise ServiceRefused(409, "the configuration changed meanwhile; reload and try again")

    admin.tickets.api.route("PUT", "/api/config", stale)
    page = admin.post("/admin/settings/tickets", {"version": "6", "concurrent_edits": "refuse"})
    assert page.status_code == 409
    assert "changed by someone else" in page.text


def test_the_attachment_limit_is_shown_and_saved_once_the_tickets_config_has_it(admin: Admin) -> None:
    config = {
        "version": 8,
        "config": {**CONFIG["config"], "settings": {"concurrent_edits": "merge", "attachment_limit_mb": 25}},
    }
    admin.tickets.api.route("GET", "/api/config", config)
    admin.tickets.api.route("PUT", "/api/config", lambda json, **_: json)
    admin.notify.route("GET", "/settings", MAIL)
    assert 'id="settings-attachment-limit"' in admin.client.get("/admin/settings").text
    bad = admin.post(
        "/admin/settings/tickets", {"version": "8", "concurrent_edits": "merge", "attachment_limit_mb": "0"}
    )
    assert bad.status_code == 422 and writes(admin.tickets.api) == []
    form = {"version": "8", "concurrent_edits": "merge", "attachment_limit_mb": "40"}
    assert admin.post("/admin/settings/tickets", form).status_code == 303
    assert writes(admin.tickets.api)[-1][3]["config"]["settings"]["attachment_limit_mb"] == 40


def test_notify_being_down_shows_the_unavailable_page(admin: Admin) -> None:
    admin.notify.down = True
    assert admin.client.get("/admin/templates").status_code == 503
