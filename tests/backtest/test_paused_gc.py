"""``paused_gc``: no collection while a backtest builds its objects, and none of them left for the
young generations to scan afterwards (that scan cost up to 0.8 s at a random moment after a
million-event backtest)."""

from __future__ import annotations

import gc
import weakref

from baton.backtest.replay import paused_gc


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _young() -> set[int]:
    return {id(o) for generation in (0, 1) for o in gc.get_objects(generation=generation)}


def test_collection_is_off_inside_and_back_on_after() -> None:
    assert gc.isenabled()
    with paused_gc():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_objects_built_inside_go_straight_to_the_oldest_generation() -> None:
    collections: list[int] = []

    def record(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    with paused_gc():
        built = [[i] for i in range(2000)]  # (more than the youngest generation's threshold)
        gc.callbacks.append(record)
    gc.disable()  # (so that nothing moves them while we look)
    try:
        young = _young()
        oldest = {id(o) for o in gc.get_objects(generation=2)}
    finally:
        gc.callbacks.remove(record)
        gc.enable()
    assert collections == []  # no young collection had them to scan on the way out
    assert not any(id(o) in young for o in built)
    assert all(id(o) in oldest for o in built)


def test_cyclic_garbage_built_inside_is_still_collected() -> None:
    with paused_gc():
        a, b = _Node(), _Node()
        a.other, b.other = b, a
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None


def test_objects_the_process_froze_stay_frozen() -> None:
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with paused_gc():
            [[i] for i in range(100)]
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_nested_use_leaves_collection_off_until_the_outer_one_ends() -> None:
    with paused_gc():
        with paused_gc():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()
