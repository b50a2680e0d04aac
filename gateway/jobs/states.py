"""Job and delivery states, and the one place where their transitions are validated.

Every instance is always in exactly one visible state (DESIGN.md, "The flow of one instance").
"""

from __future__ import annotations

import enum


class JobState(enum.StrEnum):
    """Where one received instance is in the pipeline."""

    RECEIVED = "received"  # durable in spool/incoming, waiting for a worker
    PROCESSING = "processing"  # leased by a worker
    READY = "ready"  # output in spool/outgoing, deliveries pending
    SENT = "sent"  # every destination confirmed it
    FILTERED = "filtered"  # dropped on purpose by a filter stage
    QUARANTINED = "quarantined"  # held for an operator, with a reason


class DeliveryState(enum.StrEnum):
    """Where one instance is with respect to one destination."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # permanent refusal or attempts exhausted; the job is quarantined


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.RECEIVED: frozenset({JobState.PROCESSING, JobState.QUARANTINED}),
    # processing -> processing: a lease that expired is claimed again by another worker.
    # processing -> received: released unfinished at shutdown, or retried after a transient error.
    JobState.PROCESSING: frozenset(
        {
            JobState.PROCESSING,
            JobState.RECEIVED,
            JobState.READY,
            JobState.FILTERED,
            JobState.QUARANTINED,
        }
    ),
    JobState.READY: frozenset({JobState.SENT, JobState.QUARANTINED}),
    JobState.SENT: frozenset(),
    JobState.FILTERED: frozenset(),
    # An operator releases a quarantined job: it is processed again from the original bytes.
    JobState.QUARANTINED: frozenset({JobState.RECEIVED}),
}

DELIVERY_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({DeliveryState.SENDING, DeliveryState.FAILED}),
    DeliveryState.SENDING: frozenset(
        {DeliveryState.SENDING, DeliveryState.PENDING, DeliveryState.SENT, DeliveryState.FAILED}
    ),
    DeliveryState.SENT: frozenset(),
    DeliveryState.FAILED: frozenset(),
}

UNFINISHED = frozenset({JobState.RECEIVED, JobState.PROCESSING, JobState.READY})


class InvalidTransition(Exception):
    """A state change that the state machine does not allow."""


def check_job_transition(old: JobState, new: JobState) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed."""
    if new not in JOB_TRANSITIONS[old]:
        raise InvalidTransition(f"job: {old.value} -> {new.value} is not allowed")


def check_delivery_transition(old: DeliveryState, new: DeliveryState) -> None:
    """Raise :class:`InvalidTransition` unless ``old -> new`` is allowed."""
    if new not in DELIVERY_TRANSITIONS[old]:
        raise InvalidTransition(f"delivery: {old.value} -> {new.value} is not allowed")
