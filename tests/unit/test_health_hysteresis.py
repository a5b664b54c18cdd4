"""vc5's 5-round window: down at fewer than 4 passes of the last 5, up after 5 in a row."""

import pytest

from vc5.healthd.hysteresis import Hysteresis


def feed(h, results):
    """Return the verdict after each result ('+' pass, '-' fail)."""
    out = []
    for r in results:
        h.record(r == "+")
        out.append("U" if h.up else "D")
    return "".join(out)


def test_down_backend_needs_five_consecutive_passes():
    h = Hysteresis(5, 2, up=False)
    assert feed(h, "++++") == "DDDD"
    assert feed(h, "+") == "U"


def test_failure_resets_the_climb():
    h = Hysteresis(5, 2, up=False)
    assert feed(h, "+++-+++++") == "DDDDDDDDU"


def test_single_isolated_failure_keeps_it_up():
    h = Hysteresis(5, 2, up=True)
    assert feed(h, "-++++-++++") == "UUUUUUUUUU"


def test_two_failures_within_five_rounds_bring_it_down():
    h = Hysteresis(5, 2, up=True)
    assert feed(h, "-+++-") == "UUUUD"


def test_two_consecutive_failures_bring_it_down_on_the_second():
    h = Hysteresis(5, 2, up=True)
    assert feed(h, "--") == "UD"


def test_failures_more_than_five_apart_do_not():
    h = Hysteresis(5, 2, up=True)
    assert feed(h, "-++++-") == "UUUUUU"


def test_record_reports_transitions_only():
    h = Hysteresis(3, 1, up=False)
    assert [h.record(True) for _ in range(3)] == [False, False, True]
    assert h.record(True) is False
    assert h.record(False) is True


@pytest.mark.parametrize("rise,fall", [(1, 1), (3, 1), (3, 3), (10, 4)])
def test_configurable_thresholds(rise, fall):
    h = Hysteresis(rise, fall, up=False)
    for i in range(rise - 1):
        h.record(True)
        assert not h.up
    h.record(True)
    assert h.up
    for i in range(fall - 1):
        h.record(False)
        assert h.up
    h.record(False)
    assert not h.up


def test_fall_is_clamped_to_the_window():
    h = Hysteresis(3, 9, up=True)
    assert h.fall == 3
    assert feed(h, "---") == "UUD"


def test_resize_keeps_verdict_and_recent_results():
    h = Hysteresis(5, 2, up=True)
    feed(h, "++++-")
    g = h.resized(3, 1)
    assert g.up and list(g.window) == [True, True, False]
    g2 = h.resized(7, 2)
    assert g2.up and list(g2.window) == [True, True, True, True, True, True, False]
    # the original is untouched
    assert list(h.window) == [True, True, True, True, False]


def test_initial_window_is_uniform():
    assert list(Hysteresis(5, 2, up=True).window) == [True] * 5
    assert list(Hysteresis(5, 2, up=False).window) == [False] * 5
