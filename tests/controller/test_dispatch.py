"""Dispatch policies as pure functions over candidates."""

from __future__ import annotations

import random
from collections import Counter

from controller.dispatch import Candidate, lottery, shortest_queue


def test_shortest_queue_breaks_ties_at_random() -> None:
    tied = [Candidate(f"http://w{i}:1", 1, 0) for i in range(3)]
    rng = random.Random(3)
    picks = Counter(shortest_queue(tied, rng).address for _ in range(300))
    assert set(picks) == {c.address for c in tied}


def test_shortest_queue_uses_load_per_speed() -> None:
    candidates = [Candidate("http://a:1", 1, 1), Candidate("http://b:1", 4, 3)]
    assert shortest_queue(candidates, random.Random(0)).address == "http://b:1"


def test_lottery_never_picks_outside_the_candidates() -> None:
    candidates = [Candidate("http://a:1", 2, 9), Candidate("http://b:1", 1, 0)]
    picks = {lottery(candidates, random.Random(i)).address for i in range(50)}
    assert picks == {"http://a:1", "http://b:1"}
