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
