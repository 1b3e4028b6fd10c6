from streams.offsets import OffsetTracker


def test_commit_point_is_the_lowest_held_offset():
    t = OffsetTracker()
    for off in range(5):
        t.see("p", 0, off, hold=True)
    t.release("p", 0, 0)
    t.release("p", 0, 1)
    t.release("p", 0, 3)
    assert t.to_commit() == {("p", 0): 2}
    t.release("p", 0, 2)
    t.release("p", 0, 4)
    assert t.to_commit() == {("p", 0): 5}


def test_multiple_holds_on_one_offset_need_multiple_releases():
    t = OffsetTracker()
    t.see("r", 1, 7, hold=True)
    t.see("r", 1, 7, hold=True)
    t.release("r", 1, 7)
    assert t.to_commit() == {("r", 1): 7}
    t.release("r", 1, 7)
    assert t.to_commit() == {("r", 1): 8}


def test_only_moved_offsets_are_reported_again():
    t = OffsetTracker()
    t.see("r", 0, 0)
    commits = t.to_commit()
    t.mark_committed(commits)
    assert t.to_commit() == {}
    t.see("r", 0, 1)
    assert t.to_commit() == {("r", 0): 2}


def test_forgotten_partition_is_not_committed():
    t = OffsetTracker()
    t.see("r", 3, 10, hold=True)
    t.forget("r", 3)
    assert t.to_commit() == {}


def test_the_commit_point_follows_out_of_order_releases_and_rehold():
    t = OffsetTracker()
    for off in (5, 3, 9, 7):
        t.see("t", 0, off, hold=True)
    t.release("t", 0, 3)
    t.release("t", 0, 7)
    assert t.to_commit() == {("t", 0): 5}
    t.release("t", 0, 5)
    assert t.to_commit() == {("t", 0): 9}
    t.see("t", 0, 5, hold=True)  # a replayed record is held again
    assert t.to_commit() == {("t", 0): 5}
    t.release("t", 0, 5)
    t.release("t", 0, 9)
    assert t.to_commit() == {("t", 0): 10}
