"""Dispatch policies: pure functions that pick one worker from a snapshot of candidates."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    """A live worker serving the requested model, as the registry sees it right now."""

    address: str
    speed: float
    # Requests the worker is believed to hold: its last report, plus what this controller sent
    # since, minus what ended since (never below the streams it proxies now).
    load: int


Policy = Callable[[Sequence[Candidate], random.Random], Candidate]


def lottery(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """A random worker, weighted by speed."""
    return rng.choices(candidates, weights=[c.speed for c in candidates], k=1)[0]


def shortest_queue(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """The worker with the least load per unit of speed; ties broken at random."""
    best_score = min(c.load / c.speed for c in candidates)
    best = [c for c in candidates if c.load / c.speed == best_score]
    return best[0] if len(best) == 1 else rng.choice(best)


POLICIES: dict[str, Policy] = {
    "lottery": lottery,
    "shortest_queue": shortest_queue,
}
