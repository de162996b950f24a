"""The staff directory: look-ups by address, id, @handle and group, from a cached copy of the portal's list."""

from typing import Any

import httpx
import pytest
from hdkit.staff import StaffDirectory

BO = {"id": "u-bo", "email": "Bo.Berg@Helpdesk.se", "name": "Bo Berg", "role": "agent", "groups": ["support"]}
LI = {"id": "u-li", "email": "li@helpdesk.se", "name": "Li", "role": "light_agent", "groups": ["support", "billing"]}
ADA = {"id": "ada", "email": "ada.admin@helpdesk.se", "name": "Ada", "role": "admin", "groups": ["billing"]}
GONE = {"id": "u-gone", "email": "gone@helpdesk.se", "name": "Gone", "role": "agent", "groups": ["support"]}


def directory(*members: dict[str, Any]) -> StaffDirectory:
    staff = StaffDirectory("http://portal.invalid", "token", refresh_seconds=3600)
    staff.set(list(members))
    return staff


class Portal:
    """A fake portal answering /internal/staff with whatever list it holds (or failing), counting the calls."""

    def __init__(self, *members: dict[str, Any]) -> None:
        self.members = list(members)
        self.calls = 0
        self.down = False
        self.tokens: list[str] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        self.tokens.append(request.headers.get("Authorization", ""))
        if self.down:
            return httpx.Response(503)
        assert request.url.path == "/internal/staff"
        return httpx.Response(200, json=self.members)

    def directory(self, refresh_seconds: float) -> StaffDirectory:
        return StaffDirectory(
            "http://portal.test/", "secret", refresh_seconds, transport=httpx.MockTransport(self.handle)
        )


async def test_a_member_is_found_by_address_whatever_its_case() -> None:
    staff = directory(BO, LI)
    found = await staff.find("BO.BERG@helpdesk.SE")
    assert found is not None and found.id == "u-bo" and found.email == "bo.berg@helpdesk.se"
    assert await staff.find("kund@example.se") is None


async def test_a_member_is_found_by_user_id_and_an_unknown_id_finds_nobody() -> None:
    staff = directory(BO, LI)
    found = await staff.by_id("u-li")
    assert found is not None and found.role == "light_agent" and found.groups == ("support", "billing")
    assert await staff.by_id("u-nobody") is None


async def test_a_handle_names_a_member_by_id_or_by_the_local_part_of_their_email_ignoring_case() -> None:
    staff = directory(BO, LI, ADA)
    assert (await staff.by_handle("u-bo")).id == "u-bo"  # type: ignore[union-attr]
    assert (await staff.by_handle("bo.berg")).id == "u-bo"  # type: ignore[union-attr]
    assert (await staff.by_handle("BO.Berg")).id == "u-bo"  # type: ignore[union-attr]
    assert (await staff.by_handle("ADA")).id == "ada"  # type: ignore[union-attr]
    assert await staff.by_handle("bo") is None
    assert await staff.by_handle("helpdesk.se") is None


async def test_a_user_id_wins_over_someone_elses_email_local_part() -> None:
    colleague = {"id": "u-9", "email": "ada@helpdesk.se", "name": "Another Ada", "role": "agent"}
    staff = directory(ADA, colleague)
    assert (await staff.by_handle("ada")).id == "ada"  # type: ignore[union-attr]


async def test_a_handle_two_people_share_names_nobody() -> None:
    twin = {"id": "u-li2", "email": "li@other-helpdesk.se", "name": "Li Two", "role": "agent"}
    staff = directory(LI, twin)
    assert await staff.by_handle("li") is None
    assert (await staff.by_handle("u-li2")).id == "u-li2"  # type: ignore[union-attr]


async def test_members_of_a_group_are_listed_by_id_and_disabled_accounts_are_left_out() -> None:
    staff = directory(LI, BO, ADA, {**GONE, "disabled": True}, {**GONE, "id": "u-off", "active": False})
    assert [m.id for m in await staff.members("support")] == ["u-bo", "u-li"]
    assert [m.id for m in await staff.members("billing")] == ["ada", "u-li"]
    assert await staff.members("sales") == []
    assert await staff.by_id("u-gone") is None and await staff.find("gone@helpdesk.se") is None


async def test_the_first_look_up_reads_the_list_from_the_portal_with_the_service_token() -> None:
    portal = Portal(BO)
    staff = portal.directory(refresh_seconds=3600)
    assert (await staff.by_handle("bo.berg")).id == "u-bo"  # type: ignore[union-attr]
    assert portal.calls == 1 and portal.tokens == ["Bearer secret"]


async def test_within_the_refresh_period_every_look_up_uses_the_copy() -> None:
    portal = Portal(BO, LI)
    staff = portal.directory(refresh_seconds=3600)
    await staff.find("li@helpdesk.se")
    portal.members = [ADA]
    assert await staff.by_id("u-li") is not None
    assert await staff.by_handle("ada") is None
    assert [m.id for m in await staff.members("support")] == ["u-bo", "u-li"]
    assert portal.calls == 1


async def test_an_old_copy_is_read_again_so_changes_in_the_portal_show() -> None:
    portal = Portal(BO)
    staff = portal.directory(refresh_seconds=0)
    assert await staff.by_id("u-bo") is not None
    portal.members = [LI]
    assert await staff.by_id("u-bo") is None
    assert [m.id for m in await staff.members("support")] == ["u-li"]
    assert portal.calls >= 2


async def test_when_the_portal_is_down_the_last_list_is_kept() -> None:
    portal = Portal(BO)
    staff = portal.directory(refresh_seconds=0)
    assert await staff.by_handle("bo.berg") is not None
    portal.down = True
    assert await staff.by_handle("bo.berg") is not None
    assert await staff.find("bo.berg@helpdesk.se") is not None
    assert portal.calls >= 2


async def test_before_the_portal_ever_answered_nobody_is_staff_and_it_is_not_asked_on_every_look_up() -> None:
    portal = Portal(BO)
    portal.down = True
    staff = portal.directory(refresh_seconds=60)
    assert await staff.find("bo.berg@helpdesk.se") is None
    assert await staff.by_id("u-bo") is None and await staff.by_handle("bo.berg") is None
    assert await staff.members("support") == []
    assert portal.calls == 1  # the next attempt waits a few seconds


@pytest.mark.parametrize("answer", [httpx.Response(200, json={"not": "a list"}), httpx.Response(200, text="oops")])
async def test_a_list_the_directory_cannot_read_keeps_the_last_one(answer: httpx.Response) -> None:
    calls: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=[BO]) if len(calls) == 1 else answer

    staff = StaffDirectory("http://portal.test", "secret", 0, transport=httpx.MockTransport(handle))
    assert await staff.by_id("u-bo") is not None
    assert await staff.by_id("u-bo") is not None
    assert len(calls) == 2
