"""The per-process short cache of the staff list and the ticket configuration."""

import asyncio

import pytest
from portal.shortcache import Kept, KeptByKey


class Source:
    """A value that is counted each time it is loaded, optionally held or failing."""

    def __init__(self) -> None:
        self.value: str | None = "v1"
        self.loads = 0
        self.gate: asyncio.Event | None = None
        self.fail = False

    async def __call__(self) -> str | None:
        self.loads += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise ConnectionError("away")
        return self.value


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_a_value_is_loaded_once_per_period_and_again_after_it() -> None:
    source, clock = Source(), Clock()
    kept: Kept[str | None] = Kept(ttl=5, clock=clock)
    assert await kept.get(source) == "v1"
    source.value = "v2"
    clock.now += 4.9
    assert await kept.get(source) == "v1"
    assert source.loads == 1
    clock.now += 0.2
    assert await kept.get(source) == "v2"
    assert source.loads == 2


@pytest.mark.asyncio
async def test_callers_asking_at_once_share_one_load() -> None:
    source = Source()
    source.gate = asyncio.Event()
    kept: Kept[str | None] = Kept(ttl=5)
    waiting = [asyncio.create_task(kept.get(source)) for _ in range(10)]
    await asyncio.sleep(0.01)
    source.gate.set()
    assert await asyncio.gather(*waiting) == ["v1"] * 10
    assert source.loads == 1


@pytest.mark.asyncio
async def test_a_caller_who_gives_up_does_not_cancel_the_load_others_wait_for() -> None:
    source = Source()
    source.gate = asyncio.Event()
    kept: Kept[str | None] = Kept(ttl=5)
    impatient, patient = asyncio.create_task(kept.get(source)), asyncio.create_task(kept.get(source))
    await asyncio.sleep(0.01)
    impatient.cancel()
    source.gate.set()
    assert await patient == "v1"
    assert source.loads == 1


@pytest.mark.asyncio
async def test_a_failed_load_is_not_kept() -> None:
    source = Source()
    source.fail = True
    kept: Kept[str | None] = Kept(ttl=5)
    with pytest.raises(ConnectionError):
        await kept.get(source)
    source.fail = False
    assert await kept.get(source) == "v1"
    assert source.loads == 2


@pytest.mark.asyncio
async def test_a_value_refused_by_keep_is_loaded_again_next_time() -> None:
    source = Source()
    source.value = None
    kept: Kept[str | None] = Kept(ttl=5, keep=lambda value: value is not None)
    assert await kept.get(source) is None
    source.value = "v1"
    assert await kept.get(source) == "v1"
    assert await kept.get(source) == "v1"
    assert source.loads == 2


@pytest.mark.asyncio
async def test_forget_makes_the_next_caller_load_again() -> None:
    source = Source()
    kept: Kept[str | None] = Kept(ttl=5)
    await kept.get(source)
    kept.forget()
    source.value = "v2"
    assert await kept.get(source) == "v2"


@pytest.mark.asyncio
async def test_nothing_is_kept_when_the_period_is_zero() -> None:
    source = Source()
    kept: Kept[str | None] = Kept(ttl=0)
    await kept.get(source)
    await kept.get(source)
    assert source.loads == 2


async def test_values_kept_by_key_are_apart_and_a_forgotten_key_is_loaded_again() -> None:
    clock, anna, bo = Clock(), Source(), Source()
    kept: KeptByKey[str, str | None] = KeptByKey(ttl=10, clock=clock, max_keys=2)

    assert await kept.get("anna", anna) == "v1"
    bo.value = "b1"
    assert await kept.get("bo", bo) == "b1"
    anna.value = "v2"
    assert await kept.get("anna", anna) == "v1"
    kept.forget("anna")
    assert await kept.get("anna", anna) == "v2"
    assert (anna.loads, bo.loads) == (2, 1)
    await kept.get("cecilia", Source())  # a third key: the full table is dropped, so bo is loaded anew
    assert await kept.get("bo", bo) == "b1" and bo.loads == 2
