"""The job state machine allows exactly the documented transitions."""

from __future__ import annotations

import pytest

from gateway.jobs.states import (
    DeliveryState,
    InvalidTransition,
    JobState,
    check_delivery_transition,
    check_job_transition,
)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobState.RECEIVED, JobState.PROCESSING),
        (JobState.PROCESSING, JobState.READY),
        (JobState.PROCESSING, JobState.FILTERED),
        (JobState.PROCESSING, JobState.QUARANTINED),
        (JobState.PROCESSING, JobState.PROCESSING),
        (JobState.READY, JobState.SENT),
        (JobState.READY, JobState.QUARANTINED),
        (JobState.QUARANTINED, JobState.RECEIVED),
    ],
)
def test_allowed(old: JobState, new: JobState) -> None:
    """Each transition of the flow is allowed."""
    check_job_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (JobState.SENT, JobState.RECEIVED),
        (JobState.FILTERED, JobState.READY),
        (JobState.RECEIVED, JobState.READY),
        (JobState.READY, JobState.RECEIVED),
        (JobState.QUARANTINED, JobState.SENT),
    ],
)
def test_refused(old: JobState, new: JobState) -> None:
    """Skipping a stage or leaving a final state is refused."""
    with pytest.raises(InvalidTransition):
        check_job_transition(old, new)


def test_final_states_have_no_exit() -> None:
    """Sent and filtered jobs are final; a sent delivery is final."""
    for s in (JobState.SENT, JobState.FILTERED):
        for t in JobState:
            with pytest.raises(InvalidTransition):
                check_job_transition(s, t)
    for t in DeliveryState:
        with pytest.raises(InvalidTransition):
            check_delivery_transition(DeliveryState.SENT, t)
