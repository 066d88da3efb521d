"""Candidate dispatch policies, same interface as controller.dispatch (see bench/sim.py).

If one wins clearly in the simulation it belongs in controller/dispatch.py.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from controller.dispatch import Candidate


def shortest_expected_delay(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """The worker that would finish a new request first: least (load + 1) / speed.

    Unlike load / speed, this sends a request to a fast idle worker rather than a slow idle one.
    """
    best_score = min((c.load + 1) / c.speed for c in candidates)
    best = [c for c in candidates if (c.load + 1) / c.speed == best_score]
    return best[0] if len(best) == 1 else rng.choice(best)


def power_of_two(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """Two workers drawn by speed, the one with less (load + 1) / speed wins.

    Looks at two workers only, so its cost does not grow with the pool.
    """
    if len(candidates) <= 2:
        pair = list(candidates)
    else:
        first, second = rng.choices(candidates, weights=[c.speed for c in candidates], k=2)
        pair = [first, second]
    return min(pair, key=lambda c: (c.load + 1) / c.speed)


def least_in_flight(candidates: Sequence[Candidate], rng: random.Random) -> Candidate:
    """The worker with the fewest requests, speed ignored (a common default elsewhere)."""
    fewest = min(c.load for c in candidates)
    return rng.choice([c for c in candidates if c.load == fewest])


CANDIDATE_POLICIES = {
    "shortest_expected_delay": shortest_expected_delay,
    "power_of_two": power_of_two,
    "least_in_flight": least_in_flight,
}
