"""The three levels of Thông tư 39/2020 as the arbiter decides them (pure: no sound, no clock)."""

from __future__ import annotations

from agent.audio.arbiter import Arbiter, Play


def play(id_: str, level: str = "normal", deadline: float | None = None) -> Play:
    p = Play(id_, {"kind": "tone"}, level=level)
    p.deadline = deadline
    return p


def kinds(actions) -> list[tuple[str, str]]:
    return [(a.kind, a.play.id) for a in actions]


def test_emergency_preempts_at_once_and_a_newer_emergency_replaces_it():
    arb = Arbiter()
    assert kinds(arb.submit(play("news"))) == [("start", "news")]
    assert kinds(arb.submit(play("flood", "emergency"))) == [("suspend", "news"), ("start", "flood")]
    assert kinds(arb.submit(play("fire", "emergency"))) == [("end", "flood"), ("start", "fire")]
    assert arb.current.id == "fire"


def test_priority_suspends_normal_which_resumes_afterwards():
    arb = Arbiter()
    news, notice = play("news"), play("notice", "priority")
    arb.submit(news)
    arb.submit(notice)
    assert arb.suspended == [news]
    assert kinds(arb.ended(notice)) == [("start", "news")]


def test_equal_and_lower_levels_wait_in_first_in_order():
    arb = Arbiter()
    first = play("a", "priority")
    arb.submit(first)
    assert arb.submit(play("b")) == [] and arb.submit(play("c", "priority")) == []
    assert kinds(arb.ended(first)) == [("start", "c")]  # the higher level first, then first-in
    assert [p.id for p in arb.all()] == ["c", "b"]


def test_waiting_priority_goes_before_a_suspended_normal():
    arb = Arbiter()
    arb.submit(play("news"))
    alarm = play("alarm", "emergency")
    arb.submit(alarm)
    arb.submit(play("notice", "priority"))
    assert kinds(arb.ended(alarm)) == [("start", "notice")]
    assert [p.id for p in arb.suspended] == ["news"]


def test_stop_ends_matching_plays_wherever_they_are():
    arb = Arbiter()
    arb.submit(play("n1"))
    arb.submit(play("p1", "priority"))
    arb.submit(play("n2"))
    actions = arb.stop(lambda p: p.level == "normal")
    assert sorted(kinds(actions)) == [("end", "n1"), ("end", "n2")]
    assert arb.current.id == "p1" and not arb.suspended


def test_expired_waiting_and_suspended_plays_are_dropped_but_not_the_current_one():
    arb = Arbiter()
    arb.submit(play("late", deadline=100))
    arb.submit(play("now", "emergency", deadline=50))
    arb.submit(play("queued", "emergency", deadline=100))  # replaces "now": emergencies do not queue
    arb.submit(play("wait", deadline=100))
    actions = arb.expire(150)
    assert sorted((a.kind, a.play.id, a.reason) for a in actions) == [("end", "late", "expired"),
                                                                       ("end", "wait", "expired")]
    assert arb.current.id == "queued"
