"""Job store: leases, state changes and deliveries on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine

from gateway.jobs.models import utcnow
from gateway.jobs.states import JobState
from gateway.jobs.store import Finish, JobStore, NewJob


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def _new(i: int) -> NewJob:
    return NewJob(f"job{i:04d}", "MODALITY", "GW", "1.2.840.10008.5.1.4.1.1.2",
                  "1.2.840.10008.1.2.1", "CT", 1000 + i)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(engine: Engine, clock: Clock) -> JobStore:
    return JobStore(engine, "node-a", clock=clock)


def test_claim_leases_each_job_once(store: JobStore) -> None:
    """Two workers claiming at once never get the same job."""
    for i in range(5):
        store.add_received(_new(i))
    a = store.claim("w1", 3, 60)
    b = store.claim("w2", 3, 60)
    assert len(a) == 3 and len(b) == 2
    assert not {j.id for j in a} & {j.id for j in b}
    assert store.claim("w3", 10, 60) == []
    assert store.counts()["processing"] == 5


def test_expired_lease_is_claimed_again(store: JobStore, clock: Clock) -> None:
    """A dead worker's job comes back once its lease expires, and only then."""
    store.add_received(_new(1))
    [job] = store.claim("dead", 1, 30)
    clock.advance(29)
    assert store.claim("w2", 1, 30) == []
    clock.advance(2)
    [again] = store.claim("w2", 1, 30)
    assert again.id == job.id and again.attempts == 2
    # the dead worker's late result is refused: the new lease holder wins
    assert not store.mark_ready(job.id, "dead", ["pacs"], None)
    assert store.mark_ready(job.id, "w2", ["pacs"], "rules@1")


def test_other_nodes_jobs_are_not_claimed(engine: Engine, store: JobStore) -> None:
    """A node only claims the jobs it spooled itself."""
    store.add_received(_new(1))
    other = JobStore(engine, "node-b")
    assert other.claim("w", 10, 60) == []


def test_ready_creates_deliveries_and_sent_finishes(store: JobStore) -> None:
    """A job is sent only when every destination has confirmed it."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    assert store.mark_ready(job.id, "w", ["a", "b"], None)
    [da] = store.claim_deliveries("a", 10, 60)
    [db] = store.claim_deliveries("b", 10, 60)
    assert store.deliveries_sent([da.id]) == []
    assert store.get(job.id).state == JobState.READY  # type: ignore[union-attr]
    assert store.deliveries_sent([db.id]) == [job.id]
    assert store.get(job.id).state == JobState.SENT  # type: ignore[union-attr]
    assert store.delivery_counts() == {
        "a": {"pending": 0, "sending": 0, "sent": 1, "failed": 0},
        "b": {"pending": 0, "sending": 0, "sent": 1, "failed": 0},
    }


def test_delivery_retry_waits_for_its_time(store: JobStore, clock: Clock) -> None:
    """A retried delivery is not claimed before its back-off has passed."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    store.mark_ready(job.id, "w", ["a"], None)
    [d] = store.claim_deliveries("a", 10, 60)
    store.delivery_retry(d.id, "0xA700", 0xA700, 10)
    assert store.claim_deliveries("a", 10, 60) == []
    clock.advance(11)
    [d2] = store.claim_deliveries("a", 10, 60)
    assert d2.id == d.id and d2.attempts == 2


def test_failed_delivery_quarantines_job(store: JobStore) -> None:
    """A permanent refusal puts the job in quarantine with the destination named."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    store.mark_ready(job.id, "w", ["a"], None)
    [d] = store.claim_deliveries("a", 10, 60)
    assert store.delivery_failed(d.id, "0xC000 Error: Cannot Understand", 0xC000) == job.id
    info = store.get(job.id)
    assert info is not None and info.state == JobState.QUARANTINED
    assert info.reason_class == "forward" and "0xC000" in (info.last_error or "")


def test_release_quarantined_reprocesses_from_start(store: JobStore) -> None:
    """An operator release puts the job back to received with fresh attempts."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    assert store.quarantine(job.id, "verify: leak at (0010,0010)", "leak", owner="w")
    assert store.release_quarantined(job.id)
    info = store.get(job.id)
    assert info is not None and info.state == JobState.RECEIVED and info.attempts == 0
    assert [j.id for j in store.claim("w", 1, 60)] == [job.id]


def test_purge_only_quarantined(store: JobStore) -> None:
    """Purge deletes a quarantined job and refuses any other."""
    store.add_received(_new(1))
    store.add_received(_new(2))
    jobs = store.claim("w", 2, 60)
    store.quarantine(jobs[0].id, "x", "rule", owner="w")
    assert not store.purge(jobs[1].id)
    assert store.purge(jobs[0].id)
    assert store.get(jobs[0].id) is None


def test_recover_node_returns_leased_work(store: JobStore) -> None:
    """After a crash, start-up gives this node's leased jobs and sends back to the queue."""
    for i in range(3):
        store.add_received(_new(i))
    jobs = store.claim("w", 3, 600)
    store.mark_ready(jobs[0].id, "w", ["a"], None)
    store.claim_deliveries("a", 10, 600)
    assert store.recover_node() == (2, 1)
    assert len(store.claim("w2", 10, 600)) == 2
    assert len(store.claim_deliveries("a", 10, 600)) == 1


def test_recover_deliveries_returns_one_destinations_sends(store: JobStore) -> None:
    """A forwarder thread that ended leaves its destination's sends to its replacement; the
    other destination's leases stay."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 600)
    store.mark_ready(job.id, "w", ["a", "b"], None)
    store.claim_deliveries("a", 10, 600)
    store.claim_deliveries("b", 10, 600)
    assert store.recover_deliveries("a") == 1
    assert len(store.claim_deliveries("a", 10, 600)) == 1
    assert store.claim_deliveries("b", 10, 600) == []


def test_uncounted_retry_gives_the_attempt_back(store: JobStore) -> None:
    """A retry caused by the node (counted=False) leaves the job's attempts as they were."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    store.finish("w", [Finish(job.id, JobState.RECEIVED, "write: ENOSPC", "disk_full",
                              counted=False)])
    [again] = store.claim("w", 1, 60)
    assert again.attempts == 1


def test_release_for_retry_counts_attempts(store: JobStore, clock: Clock) -> None:
    """A transient failure releases the job with a delay and keeps its attempt count."""
    store.add_received(_new(1))
    [job] = store.claim("w", 1, 60)
    assert store.release(job.id, "w", "scrubber unavailable", 5)
    assert store.claim("w", 1, 60) == []
    clock.advance(6)
    [again] = store.claim("w", 1, 60)
    assert again.attempts == 2


def test_unfinished_bytes(store: JobStore) -> None:
    """Back-pressure counts bytes of jobs not yet sent."""
    store.add_received(_new(1))
    store.add_received(_new(2))
    assert store.unfinished_bytes() == 1001 + 1002
