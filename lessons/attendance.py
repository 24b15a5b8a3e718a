"""Attendance arithmetic and the settlement rule: pure functions, no I/O.

A person's presence is the union of their stays in the room (reconnects give several, possibly
overlapping, stays), clipped to the booked slot. Someone is *present* when that covers at least
``percent`` of the slot (50 by default, ``LESSON_ATTENDANCE_PERCENT``).

- both present: ``delivered`` (completion starts: review window, then payout);
- tutor present, student not: ``student_absent`` (no-show; the tutor is paid);
- student present, tutor not: ``tutor_absent`` (the student gets a full refund);
- neither present: ``both_absent``. Not settled automatically: with no evidence of either side
  (webhooks lost, nobody came) an admin looks at it and corrects attendance.

A stay still open (joined, no leave yet) counts until ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

Interval = tuple[datetime, datetime | None]


def present_seconds(stays: Iterable[Interval], *, slot_start: datetime, slot_end: datetime, now: datetime) -> int:
    """Seconds of the slot covered by the union of ``stays`` (open stays end at ``now``)."""
    clipped: list[tuple[datetime, datetime]] = []
    for start, end in stays:
        stop = end if end is not None else now
        lo, hi = max(start, slot_start), min(stop, slot_end)
        if hi > lo:
            clipped.append((lo, hi))
    clipped.sort()
    total = 0.0
    current: tuple[datetime, datetime] | None = None
    for lo, hi in clipped:
        if current is None or lo > current[1]:
            if current is not None:
                total += (current[1] - current[0]).total_seconds()
            current = (lo, hi)
        else:
            current = (current[0], max(current[1], hi))
    if current is not None:
        total += (current[1] - current[0]).total_seconds()
    return int(total)


@dataclass(frozen=True)
class Decision:
    outcome: str  # one of lessons.models.Outcome's values
    tutor_seconds: int
    student_seconds: int


def decide(
    *,
    tutor_stays: Iterable[Interval],
    student_stays: Iterable[Interval],
    slot_start: datetime,
    slot_end: datetime,
    now: datetime,
    percent: int = 50,
) -> Decision:
    percent = min(max(percent, 1), 100)
    needed = (slot_end - slot_start).total_seconds() * percent / 100
    tutor = present_seconds(tutor_stays, slot_start=slot_start, slot_end=slot_end, now=now)
    student = present_seconds(student_stays, slot_start=slot_start, slot_end=slot_end, now=now)
    tutor_ok, student_ok = tutor >= needed, student >= needed
    if tutor_ok and student_ok:
        outcome = "delivered"
    elif tutor_ok:
        outcome = "student_absent"
    elif student_ok:
        outcome = "tutor_absent"
    else:
        outcome = "both_absent"
    return Decision(outcome=outcome, tutor_seconds=tutor, student_seconds=student)
