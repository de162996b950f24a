import json
import re

import pytest
from fastapi.testclient import TestClient
from portal.i18n import LOCALE_DIR, catalogue, language_of, translator

from .conftest import csrf_of, hidden_fields, sign_in
from .fakes import FakeUsers


def test_a_user_who_chooses_swedish_gets_swedish_pages_and_english_is_the_fallback(
    client: TestClient, users: FakeUsers
) -> None:
    sign_in(client)
    assert ">Tickets<" in client.get("/tickets").text

    saved = client.post("/me", data={"csrf_token": csrf_of(client.get("/me").text), "language": "sv"})

    assert saved.status_code == 303
    page = client.get("/tickets").text
    assert '<html lang="sv">' in page
    assert ">Ärenden<" in page
    assert ">Logga ut<" in page


def test_the_browser_language_is_used_until_the_user_chooses(client: TestClient) -> None:
    sign_in(client)

    page = client.get("/tickets", headers={"Accept-Language": "sv-SE,sv;q=0.9,en;q=0.5"}).text

    assert '<html lang="sv">' in page


def test_an_unknown_language_is_refused_and_nothing_changes(client: TestClient, users: FakeUsers) -> None:
    sign_in(client)

    response = client.post("/me", data={"csrf_token": csrf_of(client.get("/me").text), "language": "xx"})

    assert response.status_code == 422
    assert all(u.language == "" for u in users.by_id_.values())


def test_choosing_a_language_needs_the_csrf_token(client: TestClient, users: FakeUsers) -> None:
    sign_in(client)

    assert client.post("/me", data={"language": "sv"}).status_code == 403
    assert all(u.language == "" for u in users.by_id_.values())


@pytest.mark.parametrize(
    ("preferred", "header", "expected"),
    [("sv", "en", "sv"), ("", "sv-SE,en", "sv"), ("", "de,en;q=0.8", "en"), ("", None, "en"), ("xx", "fr", "en")],
)
def test_language_choice(preferred: str, header: str | None, expected: str) -> None:
    assert language_of(preferred, header) == expected


def test_placeholders_are_filled_after_translation() -> None:
    t = translator("sv")
    assert t("Sign out") == "Logga ut"
    assert t("Not in any catalogue {n}", n=3) == "Not in any catalogue 3"


def test_every_catalogue_is_valid_json_with_the_same_placeholders_as_the_english() -> None:
    files = sorted(LOCALE_DIR.glob("*/*.json"))
    assert files
    for path in files:
        for english, translated in json.loads(path.read_text(encoding="utf-8")).items():
            assert isinstance(translated, str) and translated, (path.name, english)
            assert _placeholders(english) == _placeholders(translated), (path.name, english)
    assert catalogue("sv")["Tickets"] == "Ärenden"


def test_no_two_catalogues_translate_the_same_text_differently() -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for path in sorted(LOCALE_DIR.glob("*/*.json")):
        for english, translated in json.loads(path.read_text(encoding="utf-8")).items():
            key = f"{path.parent.name}:{english}"
            if key in seen and seen[key][1] != translated:
                clashes.append((english, seen[key], (path.name, translated)))
            seen.setdefault(key, (path.name, translated))
    assert clashes == []


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w*)\}", text))


def test_a_refused_reply_is_explained_in_the_agents_language(client: TestClient) -> None:
    sign_in(client)
    client.post("/me", data={"csrf_token": csrf_of(client.get("/me").text), "language": "sv"})
    form = hidden_fields(client.get("/tickets/1").text, "/tickets/1/comments")

    response = client.post("/tickets/1/comments", data={**form, "kind": "public_reply", "text": "  "})

    assert response.status_code == 422
    assert "Inte skickat: skriv något först." in response.text
