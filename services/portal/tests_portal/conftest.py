import asyncio
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from portal.admin_people import MemoryGroups
from portal.app import create_app
from portal.domain import Role, User
from portal.magic_links import MemorySignInLinks
from portal.saved_views import MemorySavedViews
from portal.security import Passwords, SignInLimiter
from portal.settings import Settings
from portal.site_settings import MemorySiteSettings
from portal.snippets import MemorySnippets

from .fakes import FakeIngest, FakeService, FakeTickets, FakeTriggers, FakeUsers

ADMIN_EMAIL = "admin@localhost"
ADMIN_PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password
PHRASE = "a good long password"
GUESS = "guess"


@pytest.fixture(scope="session")
def passwords() -> Passwords:
    # Cheap parameters keep the tests fast; one test checks the real ones.
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def settings() -> Settings:
    return Settings(service_token="s" * 32, session_secret="x" * 48, mongo_url="mongodb://127.0.0.1:1/")


@pytest.fixture
def users(passwords: Passwords) -> FakeUsers:
    store = FakeUsers()
    add_user(store, passwords, ADMIN_EMAIL, ADMIN_PASSWORD, "admin", name="Ada Admin")
    return store


@pytest.fixture
def tickets() -> FakeTickets:
    return FakeTickets()


@pytest.fixture
def ingest() -> FakeIngest:
    return FakeIngest()


@pytest.fixture
def triggers() -> FakeTriggers:
    return FakeTriggers()


@pytest.fixture
def limiter() -> SignInLimiter:
    return SignInLimiter()


@pytest.fixture
def stores() -> dict[str, Any]:
    """The portal's own stores in memory (the app would otherwise wait for a MongoDB that is not there)."""
    return memory_stores()


def memory_stores() -> dict[str, Any]:
    """Return in-memory stand-ins of every store the portal keeps in its own database, by service name."""
    return {
        "site_settings": MemorySiteSettings(),
        "saved_views": MemorySavedViews(),
        "snippets": MemorySnippets(),
        "groups": MemoryGroups(),
        "sign_in_links": MemorySignInLinks(),
        "notify": FakeService("notify"),
    }


@pytest.fixture
def client(
    settings: Settings,
    users: FakeUsers,
    tickets: FakeTickets,
    ingest: FakeIngest,
    triggers: FakeTriggers,
    passwords: Passwords,
    limiter: SignInLimiter,
    stores: dict[str, Any],
) -> Iterator[TestClient]:
    app = create_app(
        settings,
        users=users,
        tickets=tickets,
        ingest=ingest,
        triggers=triggers,
        passwords=passwords,
        limiter=limiter,
        services=stores,
    )
    # Not entered as a context manager: the lifespan would start Kafka, which these tests do not need.
    yield TestClient(app, follow_redirects=False)
    asyncio.run(app.state.runtime.mongo.close())


def add_user(
    store: FakeUsers,
    passwords: Passwords,
    email: str,
    password: str,
    role: Role,
    *,
    name: str = "",
    disabled: bool = False,
    groups: tuple[str, ...] = (),
) -> User:
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        name=name,
        role=role,
        groups=groups,
        password_hash=passwords.hash(password),
        created_at=datetime.now(UTC),
        disabled=disabled,
    )
    store.by_id_[user.id] = user
    return user


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def hidden_fields(html: str, action: str) -> dict[str, str]:
    """Return the hidden fields of the page's form that posts to `action`, as a browser would send them."""
    match = re.search(rf'<form[^>]*action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    assert match, f"the page has no form posting to {action}"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', match.group(1)))


def sign_in(client: TestClient, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD, next: str = ""):  # noqa: A002
    form_page = client.get("/login", params={"next": next} if next else None)
    assert form_page.status_code == 200
    return client.post(
        "/login",
        data={"email": email, "password": password, "next": next, "csrf_token": csrf_of(form_page.text)},
    )


def assert_download(response: Any, *, body: bytes, content_type: str, disposition: str) -> None:
    """Check a proxied download: the bytes, and the headers that keep a browser from rendering it."""
    assert response.status_code == 200
    assert response.content == body
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == disposition
    assert response.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert response.headers["cache-control"] == "private"
