"""The internal API the other services read the staff from: service token only."""

from fastapi.testclient import TestClient
from portal.security import Passwords

from .conftest import add_user
from .fakes import FakeUsers


def test_the_staff_list_needs_the_service_token(client: TestClient) -> None:
    assert client.get("/internal/staff").status_code == 401
    assert client.get("/internal/staff", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_the_staff_list_gives_enabled_staff_without_password_hashes(
    client: TestClient, users: FakeUsers, passwords: Passwords
) -> None:
    add_user(users, passwords, "bo@localhost", "a good long password", "agent", name="Bo", groups=("it",))
    add_user(users, passwords, "kund@example.se", "a good long password", "customer")
    add_user(users, passwords, "gone@localhost", "a good long password", "agent", disabled=True)
    response = client.get("/internal/staff", headers={"Authorization": "Bearer " + "s" * 32})
    assert response.status_code == 200
    staff = {u["email"]: u for u in response.json()}
    assert sorted(staff) == ["admin@localhost", "bo@localhost"]
    assert staff["bo@localhost"]["role"] == "agent" and staff["bo@localhost"]["groups"] == ["it"]
    assert "password_hash" not in staff["bo@localhost"]
