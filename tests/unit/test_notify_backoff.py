"""Exponential backoff: doubling from initial, capped, jitter bounded, reset on success."""

import random

import pytest

from vc5.notifyd.backoff import Backoff


def test_doubles_up_to_the_cap():
    b = Backoff(initial=0.5, maximum=5)
    assert [b.failed() for _ in range(6)] == [0.5, 1, 2, 4, 5, 5]
    b.succeeded()
    assert b.failures == 0 and b.failed() == 0.5


def test_no_overflow_after_many_failures():
    assert Backoff(initial=1, maximum=60).delay(10_000) == 60


def test_jitter_stays_within_its_fraction_and_the_cap():
    b = Backoff(initial=1, maximum=8, jitter=0.25, rng=random.Random(1))
    delays = [b.delay(3) for _ in range(200)]
    assert all(3 <= d <= 5 for d in delays) and len(set(delays)) > 100
    assert all(d <= 8 for d in (b.delay(10) for _ in range(100)))


@pytest.mark.parametrize("kw,why", [({"initial": 0}, "initial"), ({"initial": 5, "maximum": 1}, "initial"),
                                    ({"factor": 0.5}, "factor"), ({"jitter": 1}, "jitter")])
def test_bad_settings_are_refused(kw, why):
    with pytest.raises(ValueError, match=why):
        Backoff(**kw)
