"""The one approval rule (``smsrelay.approval``): which reply decides which gate, and why not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smsrelay import (
    APPROVE_WORDS,
    REJECT_WORDS,
    Approval,
    Delivery,
    Gate,
    Outbound,
    Reply,
    ReplyWords,
    Status,
    decide_gate,
    gate_code,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LEAD, OTHER = "+61491570156", "+61491570157"


def reply(text: str, at: datetime, *, phone: str = LEAD, thread: str | None = None, rid: str = "r1") -> Reply:
    return Reply(rid, "sandbox", phone, at, rid, text=text, in_reply_to=thread)


def gate(code: str | None = None, mid: str = "a", at: datetime | None = T0) -> Gate:
    return Gate(sent_at=at, message_ids=frozenset({mid}), approvers=frozenset({LEAD}), code=code)


def test_a_yes_one_second_before_the_gates_message_does_not_approve_it():
    verdict = decide_gate(gate(), [reply("YES", T0 - timedelta(seconds=1))])
    assert verdict.decision == "undecided"
    assert "1s before the gate's message" in verdict.passed[0][1]


def test_a_reply_before_the_provider_reported_the_send_waits():
    approval = Approval(Gate(None, frozenset({"a"})))
    approval.observe([reply("YES", T0 + timedelta(seconds=5))])
    assert approval.verdict().decision == "undecided"
    assert "waiting for the provider" in approval.verdict().reason
    approval.observe([Delivery("d1", "sandbox", LEAD, T0, "a", status=Status.QUEUED)])
    assert approval.verdict().decision == "approved"


def test_the_earliest_report_of_the_gates_message_is_its_send_time():
    approval = Approval(Gate(None, frozenset({"a"})))
    approval.observe([Delivery("d2", "sandbox", LEAD, T0 + timedelta(seconds=9), "a", status=Status.DELIVERED)])
    approval.observe([Delivery("d1", "sandbox", LEAD, T0, "a", status=Status.QUEUED)])
    assert approval.sent_at == T0


def test_two_gates_one_approver_a_bare_reply_decides_neither_and_says_why():
    a, b = gate("1111", "a"), gate("2222", "b", T0 + timedelta(seconds=10))
    outbound = [Outbound("a", LEAD, T0), Outbound("b", LEAD, T0 + timedelta(seconds=10))]
    bare = [reply("YES", T0 + timedelta(seconds=30))]
    for g, code in ((a, "1111"), (b, "2222")):
        verdict = decide_gate(g, bare, outbound=outbound)
        assert verdict.decision == "undecided"
        assert "carries no code" in verdict.reason and f"reply with the gate's code ({code})" in verdict.reason


def test_two_gates_one_approver_a_coded_reply_decides_only_its_gate():
    a, b = gate("1111", "a"), gate("2222", "b", T0 + timedelta(seconds=10))
    outbound = [Outbound("a", LEAD, T0), Outbound("b", LEAD, T0 + timedelta(seconds=10))]
    coded = [reply("no 2222", T0 + timedelta(seconds=30))]
    assert decide_gate(b, coded, outbound=outbound).decision == "rejected"
    verdict = decide_gate(a, coded, outbound=outbound)
    assert verdict.decision == "undecided" and "code 2222, which is another gate's" in verdict.reason


def test_a_threaded_reply_decides_only_its_own_gate():
    a, b = gate(None, "a"), gate(None, "b", T0 + timedelta(seconds=10))
    outbound = [Outbound("a", LEAD, T0), Outbound("b", LEAD, T0 + timedelta(seconds=10))]
    threaded = [reply("YES", T0 + timedelta(seconds=30), thread="a")]
    assert decide_gate(a, threaded, outbound=outbound).decision == "approved"
    assert decide_gate(b, threaded, outbound=outbound).decision == "undecided"


def test_a_message_long_before_the_gate_is_no_rival():
    old = [Outbound("z", LEAD, T0 - timedelta(hours=2))]
    verdict = decide_gate(gate(), [reply("ok", T0 + timedelta(seconds=3))], outbound=old)
    assert verdict.decision == "approved"


def test_an_earlier_message_the_approver_answered_is_no_rival():
    notified = [Outbound("z", LEAD, T0 - timedelta(minutes=5))]
    answered = reply("thanks", T0 - timedelta(minutes=4), rid="r0")
    yes = reply("YES", T0 + timedelta(seconds=3))
    assert decide_gate(gate(), [answered, yes], outbound=notified).decision == "approved"
    verdict = decide_gate(gate(), [yes], outbound=notified)
    assert verdict.decision == "undecided" and "offer a per-gate code" in verdict.reason


def test_a_gate_without_message_ids_presumes_one_later_message_is_its_question():
    blind = Gate(sent_at=T0, approvers=frozenset({LEAD}))
    yes = reply("YES", T0 + timedelta(seconds=30))
    question = Outbound("q", LEAD, T0 + timedelta(seconds=1))
    assert decide_gate(blind, [yes], outbound=[question]).decision == "approved"
    second = Outbound("q2", LEAD, T0 + timedelta(seconds=2))
    assert decide_gate(blind, [yes], outbound=[question, second]).decision == "undecided"


def test_only_approvers_count_and_reject_wins_a_tie():
    replies = [reply("YES", T0 + timedelta(seconds=1), phone=OTHER), reply("yes... no", T0 + timedelta(seconds=2))]
    words = ReplyWords.parse(r"yes", r"no\b")
    verdict = decide_gate(gate(), replies, words=words)
    assert verdict.decision == "rejected" and verdict.reply is not None and verdict.reply.phone == LEAD
    assert verdict.passed[0][1] == "is not from an approver"


def test_words_validation_names_the_field():
    with pytest.raises(ValueError, match=r"approve: '\(' is not a valid regular expression"):
        ReplyWords.parse("(", REJECT_WORDS)
    with pytest.raises(ValueError, match="reject: give at least one word"):
        ReplyWords.parse(APPROVE_WORDS, [" "])


def test_gate_codes_are_stable_digits():
    assert gate_code("run-1") == gate_code("run-1") and len(gate_code("run-1")) == 4
    assert gate_code("run-1").isdigit()


# -- properties ---------------------------------------------------------------------------

offsets = st.integers(min_value=-3600, max_value=3600)
texts = st.sampled_from(["YES", "yes please", "No", "STOP", "maybe", "ok 1234", "go", "deny it"])


@given(st.lists(st.tuples(offsets, texts), max_size=8))
def test_no_reply_before_the_send_ever_decides(items):
    replies = [reply(t, T0 + timedelta(seconds=s), rid=f"r{i}") for i, (s, t) in enumerate(items)]
    verdict = decide_gate(gate(), replies)
    if verdict.reply is not None:
        assert verdict.reply.occurred_at >= T0
    early_only = [r for r in replies if r.occurred_at < T0]
    assert decide_gate(gate(), early_only).decision == "undecided"


@given(st.lists(st.tuples(st.integers(0, 600), texts, st.sampled_from([None, "a", "b"])), max_size=8))
def test_one_reply_never_decides_two_open_gates(items):
    """However replies are threaded or coded, no reply decides both of two gates open for one number."""
    a, b = gate("1111", "a"), gate("2222", "b", T0 + timedelta(seconds=1))
    outbound = [Outbound("a", LEAD, T0), Outbound("b", LEAD, T0 + timedelta(seconds=1))]
    for i, (s, text, thread) in enumerate(items):
        r = reply(text, T0 + timedelta(seconds=2 + s), thread=thread, rid=f"r{i}")
        decided = [g for g in (a, b) if decide_gate(g, [r], outbound=outbound).decision != "undecided"]
        assert len(decided) <= 1


@given(st.permutations(list(range(5))))
def test_the_verdict_does_not_depend_on_the_order_replies_arrive(order):
    replies = [reply(t, T0 + timedelta(seconds=i + 1), rid=f"r{i}") for i, t in enumerate(["x", "YES", "no", "y", "?"])]
    shuffled = [replies[i] for i in order]
    assert decide_gate(gate(), shuffled) == decide_gate(gate(), replies)


@given(st.text(max_size=40))
def test_classify_never_raises_and_reject_wins(text):
    words = ReplyWords()
    result = words.classify(text)
    if words.reject is not None and words.reject.search(text):
        assert result == "rejected"


def test_words_and_regexes_match_in_any_case():
    words = ReplyWords.parse(["SHIP"], ["hold"])
    assert (words.classify("ship it"), words.classify("HOLD ON"), words.classify("Ship")) == (
        "approved",
        "rejected",
        "approved",
    )
    assert ReplyWords.parse(r"\bgo\b", None).classify("GO now") == "approved"


def test_gate_codes_spread_over_every_code_and_keep_leading_zeros():
    codes = {gate_code(f"run-{i}") for i in range(500)}
    assert len(codes) > 450 and all(len(c) == 4 and c.isdigit() for c in codes)
    assert any(c.startswith("0") for c in codes)


def test_a_later_question_to_the_same_number_seen_in_the_feed_holds_a_bare_reply():
    approval = Approval(Gate(None, frozenset({"a"}), approvers=frozenset({LEAD})))
    approval.observe([Delivery("d1", "sandbox", LEAD, T0, "a", status=Status.QUEUED)])
    approval.observe([Delivery("d2", "sandbox", LEAD, T0 + timedelta(seconds=10), "b", status=Status.QUEUED)])
    approval.observe([reply("YES", T0 + timedelta(seconds=30))])
    assert approval.verdict().decision == "undecided"
    other = Approval(Gate(None, frozenset({"a"}), approvers=frozenset({LEAD})))
    other.observe([Delivery("d1", "sandbox", LEAD, T0, "a", status=Status.QUEUED)])
    other.observe([Delivery("d3", "sandbox", OTHER, T0 + timedelta(seconds=20), "c", status=Status.QUEUED)])
    other.observe([reply("YES", T0 + timedelta(seconds=30))])
    assert other.verdict().decision == "approved"  # a question to another number is no rival
