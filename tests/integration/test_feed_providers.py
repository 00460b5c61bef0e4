"""The unified feed over each landed provider's polling, with a durable cursor across restarts."""

from __future__ import annotations

import pytest

from smsrelay.model import Status

# ME-SMS sends only to Thai numbers; the last four digits still pick the outcome.
PREFIX = {"mesms": "+6681234"}
PROVIDERS = {
    "kudosity-v2": ("kudosity_v2_factory", "kudosity_v2_emulator"),
    "kudosity-v1": ("kudosity_v1_factory", "kudosity_v1_emulator"),
    "smskit": ("smskit_client_factory", "smskit_emulator"),
    "mesms": ("mesms_client_factory", "mesms_emulator"),
    "kaleyra": ("kaleyra_client_factory", "kaleyra_emulator"),
}


def drain(client, cursor):
    events = []
    while True:
        page = client.events(cursor=cursor)
        events.extend(page.events)
        if not page.more:
            client.commit_events(cursor, page)
            return events


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_polled_events_through_the_feed_survive_a_restart(name, request, tmp_path):
    factory_name, emulator_name = PROVIDERS[name]
    factory = request.getfixturevalue(factory_name)
    emulator = request.getfixturevalue(emulator_name)
    inbox = str(tmp_path / "inbox.db")

    prefix = PREFIX.get(name, "+6149157")
    client = factory(inbox=inbox)
    client.send([prefix + "0156", prefix + "0004"], "Reply YES please")
    for _ in range(10):
        emulator.advance(30)
    first = drain(client, "feed")
    assert first, f"{name}: polling found no events"
    ids = [e.event_id for e in first]
    assert len(ids) == len(set(ids))
    final = {}
    for e in first:
        if e.kind == "delivery":
            final[e.phone] = e.status
    if client.capabilities.status_poll and final:
        # The feed never lets a stale status follow a final one.
        assert final.get(prefix + "0156") in (Status.DELIVERED, None)
    if name.startswith("kudosity"):
        # Both Kudosity APIs poll delivery reports too (V1: get-sms-sent per followed send).
        assert final.get(prefix + "0156") is Status.DELIVERED, f"{name}: no polled delivery report"

    restarted = factory(inbox=inbox)
    assert drain(restarted, "feed") == [], f"{name}: a restart replayed events"

    restarted.send([prefix + "0004"], "One more: reply YES again")
    for _ in range(10):
        emulator.advance(30)
    later = drain(restarted, "feed")
    assert not set(e.event_id for e in later) & set(ids), f"{name}: old events came back"
    # Every poller reports something for a reply-producing number (its delivery, its reply or both).
    assert any(e.phone == prefix + "0004" for e in later), f"{name}: the new message's events were skipped"
