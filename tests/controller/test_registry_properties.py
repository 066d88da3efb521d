"""Property-based test of the registry under random interleavings of everything it does."""

from __future__ import annotations

import random

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from controller.model_order import sort_models
from controller.registry import Registry, WorkerStatus
from tests.controller.conftest import FakeClock

ADDRESSES = [f"http://w{i}:1" for i in range(4)]
MODELS = ["InternVL2-8B", "InternVL2-Pro", "chat"]
EXPIRY_S = 30.0


class RegistryMachine(RuleBasedStateMachine):
    """A model of what the registry should hold, checked after every step."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.registry = Registry(EXPIRY_S, clock=self.clock, rng=random.Random(0),
                                 breaker_failures=2, breaker_cooldown_s=5)
        self.models: dict[str, tuple[str, ...]] = {}
        self.last_beat: dict[str, float] = {}
        self.checked: dict[str, bool] = {}
        self.open_streams: list[str] = []

    @rule(address=st.sampled_from(ADDRESSES),
          models=st.lists(st.sampled_from(MODELS), min_size=1, max_size=3, unique=True),
          speed=st.integers(1, 4), queue=st.integers(0, 5), check=st.booleans())
    def register(self, address, models, speed, queue, check) -> None:
        self.registry.register(address, WorkerStatus(tuple(models), speed, queue), check)
        self.models[address] = tuple(models)
        self.last_beat[address] = self.clock.now
        self.checked[address] = check

    @rule(address=st.sampled_from(ADDRESSES), queue=st.integers(0, 5))
    def heartbeat(self, address, queue) -> None:
        exists = self.registry.heartbeat(address, queue)
        assert exists == (address in self.models)
        if exists:
            self.last_beat[address] = self.clock.now

    @rule(seconds=st.floats(0, 40))
    def time_passes_and_sweep(self, seconds) -> None:
        self.clock.advance(seconds)
        removed = set(self.registry.expire())
        expected = {a for a in self.models
                    if self.checked[a] and self.clock.now - self.last_beat[a] > EXPIRY_S}
        assert removed == expected
        for address in removed:
            del self.models[address]
        # As with remove: streams to a forgotten worker are no longer counted anywhere.
        self.open_streams = [a for a in self.open_streams if a not in removed]

    @rule(model=st.sampled_from(MODELS), method=st.sampled_from(["lottery", "shortest_queue"]),
          stream=st.booleans())
    def dispatch(self, model, method, stream) -> None:
        address = self.registry.dispatch(model, method, stream=stream)
        if address is None:
            return
        assert model in self.models[address]
        assert not (self.checked[address]
                    and self.clock.now - self.last_beat[address] > EXPIRY_S)
        if stream:
            self.open_streams.append(address)

    @precondition(lambda self: self.open_streams)
    @rule(data=st.data())
    def stream_ends(self, data) -> None:
        address = data.draw(st.sampled_from(self.open_streams))
        self.open_streams.remove(address)
        self.registry.stream_ended(address)

    @rule(address=st.sampled_from(ADDRESSES))
    def remove(self, address) -> None:
        assert self.registry.remove(address) == (address in self.models)
        self.models.pop(address, None)
        # Streams to a removed worker end without being counted anywhere.
        self.open_streams = [a for a in self.open_streams if a != address]

    @rule(address=st.sampled_from(ADDRESSES), failed=st.booleans())
    def outcome(self, address, failed) -> None:
        if failed:
            self.registry.record_failure(address)
        else:
            self.registry.record_success(address)

    @invariant()
    def membership_and_models_match(self) -> None:
        assert sorted(self.registry.addresses()) == sorted(self.models)
        served = {m for models in self.models.values() for m in models}
        assert self.registry.list_models() == sort_models(served)

    @invariant()
    def in_flight_is_exact_and_load_covers_it(self) -> None:
        for view in self.registry.views():
            assert view.in_flight == self.open_streams.count(view.address)
            assert view.load >= view.in_flight >= 0


TestRegistryProperties = RegistryMachine.TestCase
TestRegistryProperties.settings = settings(max_examples=150, stateful_step_count=40,
                                           deadline=None)
