"""The timer scheduler against the real store: timers fire once, when due, and survive crashes and restarts."""

import asyncio
import collections
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from triggers.scheduler import Scheduler, Timer

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A handler that remembers every timer it was given."""

    def __init__(self) -> None:
        self.seen: list[Timer] = []

    async def __call__(self, timer: Timer) -> None:
        self.seen.append(timer)


async def _scheduler(coll: Any, owner: str = "a", **options: Any) -> Scheduler:
    sched = Scheduler(coll, owner, **options)
    await sched.ensure_indexes()
    return sched


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def timers(mongo: Any) -> Any:
    return mongo["timers"]


async def test_a_timer_fires_once_when_due_and_not_before(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock)
    handle = Recorder()
    await sched.schedule("wake:t1", T0 + timedelta(hours=48), "wake", {"ticket_id": "t1"})

    clock.advance(48 * 3600 - 1)
    assert await sched.run_once(handle) == 0
    clock.advance(1)
    assert await sched.run_once(handle) == 1
    clock.advance(3600)
    assert await sched.run_once(handle) == 0

    assert [(t.id, t.kind, t.payload, t.due_at) for t in handle.seen] == [
        ("wake:t1", "wake", {"ticket_id": "t1"}, T0 + timedelta(hours=48))
    ]
    assert await timers.count_documents({}) == 0


async def test_due_timers_fire_oldest_first(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock, batch=2)
    handle = Recorder()
    for n, minutes in enumerate([30, 10, 20]):
        await sched.schedule(f"t{n}", T0 + timedelta(minutes=minutes), "k", {})
    clock.advance(3600)

    assert await sched.run_once(handle) == 2
    assert await sched.run_once(handle) == 1
    assert [t.id for t in handle.seen] == ["t1", "t2", "t0"]


async def test_scheduling_an_existing_timer_again_moves_its_due_time_and_payload(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock)
    handle = Recorder()
    await sched.schedule("sla:t1", T0 + timedelta(minutes=10), "sla", {"v": 1})
    await sched.schedule("sla:t1", T0 + timedelta(minutes=100), "sla", {"v": 2})

    clock.advance(50 * 60)
    assert await sched.run_once(handle) == 0
    clock.advance(50 * 60)
    assert await sched.run_once(handle) == 1
    assert [(t.payload, t.due_at) for t in handle.seen] == [({"v": 2}, T0 + timedelta(minutes=100))]


async def test_a_cancelled_timer_never_fires(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock)
    handle = Recorder()
    await sched.schedule("wake:t1", T0 + timedelta(minutes=1), "wake", {})
    await sched.schedule("wake:t2", T0 + timedelta(minutes=1), "wake", {})

    assert await sched.cancel("wake:t1") is True
    assert await sched.cancel("wake:nope") is False
    clock.advance(3600)
    await sched.run_once(handle)
    assert [t.id for t in handle.seen] == ["wake:t2"]


async def test_two_schedulers_on_one_collection_fire_each_of_200_timers_exactly_once(timers: Any) -> None:
    now = datetime.now(UTC)
    first = await _scheduler(timers, "one", batch=40, poll_seconds=0.02, lease_seconds=10)
    second = await _scheduler(timers, "two", batch=40, poll_seconds=0.02, lease_seconds=10)
    await timers.insert_many(
        [
            {
                "_id": f"t{n:03d}",
                "state": "pending",
                "due_at": now - timedelta(seconds=1),
                "kind": "k",
                "payload": {},
                "owner": "",
                "claim": "",
                "lease_until": datetime(1970, 1, 1, tzinfo=UTC),
                "attempts": 0,
            }
            for n in range(200)
        ]
    )
    fired: collections.Counter[str] = collections.Counter()
    by: dict[str, int] = {"one": 0, "two": 0}

    def recorder(owner: str) -> Any:
        async def handle(timer: Timer) -> None:
            fired[timer.id] += 1
            by[owner] += 1
            await asyncio.sleep(0)  # let the other scheduler run meanwhile

        return handle

    tasks = [asyncio.create_task(s.run(recorder(s.owner))) for s in (first, second)]
    try:
        for _ in range(400):
            if await timers.count_documents({}) == 0:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a doubled firing would show up now
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    assert len(fired) == 200
    assert set(fired.values()) == {1}
    assert by["one"] > 0 and by["two"] > 0


async def test_the_run_loop_fires_a_timer_when_it_becomes_due(timers: Any) -> None:
    sched = await _scheduler(timers, poll_seconds=0.05)
    handle = Recorder()
    await sched.schedule("soon", datetime.now(UTC) + timedelta(seconds=0.6), "k", {})
    task = asyncio.create_task(sched.run(handle))
    try:
        await asyncio.sleep(0.3)
        assert handle.seen == []
        for _ in range(60):
            if handle.seen:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert [t.id for t in handle.seen] == ["soon"]
    assert sched.lag.collect()[0].samples  # the lag was measured


async def test_a_timer_whose_handler_raises_fires_again_after_a_back_off(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock, retry_seconds=10)
    calls: list[Timer] = []

    async def flaky(timer: Timer) -> None:
        calls.append(timer)
        if len(calls) == 1:
            raise RuntimeError("Kafka is down")

    await sched.schedule("wake:t1", T0, "wake", {})
    assert await sched.run_once(flaky) == 1
    assert await sched.run_once(flaky) == 0  # backing off
    doc = await timers.find_one({"_id": "wake:t1"})
    assert doc is not None and doc["attempts"] == 1

    clock.advance(10)
    assert await sched.run_once(flaky) == 1
    assert len(calls) == 2 and calls[0].fire_id == calls[1].fire_id
    assert calls[1].attempts == 1
    assert await timers.count_documents({}) == 0
    assert sched.failed.labels("wake")._value.get() == 1
    assert sched.fired.labels("wake")._value.get() == 1


async def test_a_timer_handled_by_a_crashed_scheduler_is_handled_again_with_the_same_fire_id(
    timers: Any, clock: Clock
) -> None:
    crashed = await _scheduler(timers, "crashed", clock=clock, lease_seconds=5)
    survivor = await _scheduler(timers, "survivor", clock=clock, lease_seconds=5)
    await sched_schedule(crashed, "recur:r1", T0)
    handle = Recorder()

    _, claimed = await crashed.claim()  # ... handled, then the process died before marking it done
    await handle(claimed[0])
    assert await survivor.run_once(handle) == 0  # the lease still holds

    clock.advance(5)
    assert await survivor.run_once(handle) == 1
    assert [t.id for t in handle.seen] == ["recur:r1", "recur:r1"]
    assert handle.seen[0].fire_id == handle.seen[1].fire_id
    assert await timers.count_documents({}) == 0


async def sched_schedule(sched: Scheduler, timer_id: str, due_at: datetime) -> None:
    await sched.schedule(timer_id, due_at, "recur", {"template": "weekly"})


async def test_a_timer_re_armed_while_it_is_handled_stays_pending_for_its_new_time(timers: Any, clock: Clock) -> None:
    sched = await _scheduler(timers, clock=clock)
    seen: list[Timer] = []

    async def re_arm(timer: Timer) -> None:
        seen.append(timer)
        if len(seen) == 1:
            await sched.schedule(timer.id, timer.due_at + timedelta(days=7), timer.kind, {"week": 2})

    await sched.schedule("recur:r1", T0, "recur", {"week": 1})
    assert await sched.run_once(re_arm) == 1
    doc = await timers.find_one({"_id": "recur:r1"})
    assert doc is not None and doc["due_at"] == T0 + timedelta(days=7) and doc["payload"] == {"week": 2}

    clock.advance(7 * 86400 - 1)
    assert await sched.run_once(re_arm) == 0
    clock.advance(1)
    assert await sched.run_once(re_arm) == 1
    assert [t.payload for t in seen] == [{"week": 1}, {"week": 2}]
    assert seen[0].fire_id != seen[1].fire_id
    assert await timers.count_documents({}) == 0


async def test_a_new_scheduler_picks_up_timers_scheduled_before_a_restart(mongo: Any, clock: Clock) -> None:
    before = await _scheduler(mongo["timers"], "before", clock=clock)
    await before.schedule("wake:t1", T0 + timedelta(minutes=5), "wake", {"ticket_id": "t1"})
    del before

    after = await _scheduler(mongo.client[mongo.name]["timers"], "after", clock=clock)
    handle = Recorder()
    clock.advance(300)
    assert await after.run_once(handle) == 1
    assert [(t.id, t.payload) for t in handle.seen] == [("wake:t1", {"ticket_id": "t1"})]


def test_timer_times_must_be_timezone_aware() -> None:
    from triggers.scheduler import to_store_time

    with pytest.raises(ValueError, match="timezone-aware"):
        to_store_time(datetime(2026, 1, 1))  # noqa: DTZ001 - the point of the test
