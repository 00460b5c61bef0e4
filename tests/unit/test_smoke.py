from smsrelay import Status


def test_sandbox_sends_and_delivers(sandbox, clock):
    result = sandbox.send(["+61491570156", "+61491570001"], "Hi {{ n }}", vars={"n": 1})
    assert [r.status for r in result.results] == [Status.QUEUED, Status.QUEUED]
    clock.advance(10)
    statuses = sandbox.status(result.message_ids)
    assert [d.status for d in statuses.values()] == [Status.DELIVERED, Status.FAILED]
