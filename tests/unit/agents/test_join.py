from agents.join import Joiner
from tests.unit.agents.factories import plan, pred


def test_completes_when_all_predictions_arrive_in_any_order():
    j = Joiner()
    j.add_prediction(pred(model="b"), ("p", 0, 5), 0)
    assert j.collect(0) == []
    j.add_plan(plan(), ("plans", 0, 1), 0)
    assert j.collect(0) == []
    j.add_prediction(pred(model="a"), ("p", 0, 6), 0)
    (done,) = j.collect(1)
    assert not done.partial and not done.duplicate
    assert sorted(done.offsets) == [("p", 0, 5), ("p", 0, 6), ("plans", 0, 1)]


def test_deadline_gives_a_partial_result():
    j = Joiner()
    j.add_plan(plan(deadline=100), ("plans", 0, 1), 0)
    j.add_prediction(pred(model="a"), ("p", 0, 2), 0)
    assert j.collect(99) == []
    (done,) = j.collect(100)
    assert done.partial and set(done.predictions) == {("sentiment", "a")}


def test_redelivered_plan_of_a_finished_message_is_a_duplicate():
    j = Joiner()
    j.add_plan(plan(models=("a",)), ("plans", 0, 1), 0)
    j.add_prediction(pred(model="a"), ("p", 0, 2), 0)
    assert len(j.collect(0)) == 1
    j.add_plan(plan(models=("a",)), ("plans", 0, 1), 0)
    (dup,) = j.collect(0)
    assert dup.duplicate


def test_orphan_predictions_expire():
    j = Joiner(orphan_ttl_ms=1000)
    j.add_prediction(pred(), ("p", 0, 1), 0)
    assert j.collect(500) == []
    (orphan,) = j.collect(1001)
    assert orphan.duplicate and orphan.plan is None


def test_dropping_partitions_forgets_their_joins():
    j = Joiner()
    j.add_plan(plan("x"), ("plans", 3, 1), 0)
    j.add_plan(plan("y"), ("plans", 4, 1), 0)
    j.drop_partitions({3})
    assert set(j.pending) == {"y"}


def test_a_second_record_with_the_same_id_is_a_conflict_not_a_silent_drop():
    j = Joiner()
    first = plan(models=("a",))
    first.origin = "sf.in/0/1"
    j.add_plan(first, ("plans", 0, 1), 0)
    j.add_prediction(pred(model="a"), ("p", 0, 2), 0)
    assert len(j.collect(0)) == 1
    again = plan(models=("a",))
    again.origin = "sf.in/3/9"  # another input record, same id
    j.add_plan(again, ("plans", 0, 5), 0)
    (dup,) = j.collect(0)
    assert dup.duplicate and [c.origin for c in dup.conflicts] == ["sf.in/3/9"]


def test_redelivery_of_the_same_record_is_silently_dropped():
    j = Joiner()
    first = plan(models=("a",))
    first.origin = "sf.in/0/1"
    j.add_plan(first, ("plans", 0, 1), 0)
    j.add_prediction(pred(model="a"), ("p", 0, 2), 0)
    j.collect(0)
    j.add_plan(first.model_copy(), ("plans", 0, 1), 0)
    (dup,) = j.collect(0)
    assert dup.duplicate and dup.conflicts == []


def test_only_joins_that_changed_or_came_due_are_looked_at():
    j = Joiner(orphan_ttl_ms=1000)
    j.add_plan(plan("x", deadline=100), ("plans", 0, 1), 0)
    j.add_plan(plan("y", deadline=50), ("plans", 0, 2), 0)
    assert j.collect(10) == []
    # untouched and not yet due: a later collect finds nothing to do
    assert j.collect(20) == [] and set(j.pending) == {"x", "y"}
    (due,) = j.collect(50)  # y's deadline came first
    assert due.message_id == "y" and due.partial
    (late,) = j.collect(100)
    assert late.message_id == "x" and late.partial


def test_a_failover_is_waited_for_like_a_planned_model():
    from agents.join import plan_failovers

    j = Joiner()
    j.add_plan(plan(models=("a",), deadline=1000), ("plans", 0, 1), 0)
    j.add_prediction(pred(model="a", error="boom"), ("p", 0, 2), 0)
    (failover,) = plan_failovers(j.pending["m1"], {"sentiment": ["a", "b"]}, 10)
    assert failover.model_id == "b"
    assert j.collect(10) == []  # waits for b now
    j.add_prediction(pred(model="b"), ("p", 0, 3), 10)
    (done,) = j.collect(11)
    assert not done.partial and set(done.predictions) == {("sentiment", "a"), ("sentiment", "b")}


def test_finished_joins_leave_the_deadline_heap_bounded():
    j = Joiner()
    for i in range(5000):
        mid = f"m{i}"
        j.add_plan(plan(mid, models=("a",), deadline=10**9), ("plans", 0, 2 * i), i)
        j.add_prediction(pred(mid, model="a"), ("p", 0, 2 * i + 1), i)
        assert len(j.collect(i)) == 1
    assert not j.pending and len(j._deadlines) <= 1024 + 1


def test_an_error_that_overtakes_its_plan_is_still_failed_over():
    from agents.join import plan_failovers

    j = Joiner()
    j.add_prediction(pred(model="a", error="boom"), ("p", 0, 1), 0)
    assert j.collect(0) == []  # no plan yet: nothing to fail over
    j.add_plan(plan(models=("a",), deadline=1000), ("plans", 0, 2), 5)
    assert j.has_errors("m1")
    (failover,) = plan_failovers(j.pending["m1"], {"sentiment": ["a", "b"]}, 5)
    assert failover.model_id == "b"
    assert j.collect(5) == []  # waits for b instead of finishing with a's error
