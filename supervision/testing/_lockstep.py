"""The real core and the reference model, driven in lockstep and compared.

:class:`Lockstep` feeds every step to a :class:`Simulator` (the real core) and
to a :class:`~supervision.testing.model.Model`, and after each step checks that
they agree: the command's error, the events, every running supervisor's
children and their statuses, the start counts, the give-ups and the root's exit.
The first difference raises :class:`Disagreement` with an account of it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

from .._core.spec import Supervisor
from ._schedule import StartTree, Step, describe_supervisor
from ._simulate import Simulator
from ._view import error_key, event_key, format_event
from .model import Model


class Disagreement(AssertionError):
    """The core and the model disagree. The message says where.

    >>> from supervision.testing import Disagreement
    >>> issubclass(Disagreement, AssertionError)     # a failure, for any test runner
    True
    """


class Lockstep:
    """A simulator and a model of the same spec, stepped together.

    >>> import supervision as sv
    >>> async def work(ctx): ...
    >>> pair = Lockstep(sv.Supervisor([sv.child("a", work)]))
    >>> pair.start()  # or pair.apply(StartTree())
    >>> from supervision.testing import Crash
    >>> pair.apply(Crash("a"))
    >>> pair.simulator.starts[("a",)]
    2
    """

    def __init__(
        self, spec: Supervisor, *, model: type[Model] = Model, seed: int = 0, immediate_retries: bool = True
    ) -> None:
        self.spec = spec
        self.simulator = Simulator(spec, rng=random.Random(seed), immediate_retries=immediate_retries)
        self.model = model(spec, rng=random.Random(seed), immediate_retries=immediate_retries)
        self.steps: list[Step] = []
        self._seen = 0  # events already compared

    @property
    def running(self) -> bool:
        return self.simulator.running

    def start(self) -> None:
        """Start both trees and compare (the same as applying ``StartTree()``)."""
        self.apply(StartTree())

    def apply(self, step: Step) -> None:
        """Apply one step to both and compare; :class:`Disagreement` if they differ."""
        self.steps.append(step)
        core_error, model_error = self.simulator.apply(step), self.model.apply(step)
        self._check(repr(step), core_error, model_error)

    def _check(self, what: str, core_error: BaseException | None, model_error: BaseException | None) -> None:
        problems = []
        if error_key(core_error) != error_key(model_error):
            problems.append(f"{what} raised: core {core_error!r}, model {model_error!r}")
        core_events, model_events = self.simulator.events, self.model.events
        core_keys = [event_key(e) for e in core_events[self._seen :]]
        model_keys = [event_key(e) for e in model_events[self._seen :]]
        if core_keys != model_keys:
            problems.append("events differ (core | model):\n" + self._events_side_by_side())
        diff = self.simulator.view().diff(self.model.view())
        if diff:
            problems.append(diff)
        if problems:
            raise Disagreement(self._report(what, problems))
        self._seen = len(core_events)

    def _events_side_by_side(self) -> str:
        core_events, model_events = self.simulator.events, self.model.events
        lines = []
        for i in range(self._seen, max(len(core_events), len(model_events))):
            a = format_event(core_events[i]) if i < len(core_events) else "-"
            b = format_event(model_events[i]) if i < len(model_events) else "-"
            same = i < len(core_events) and i < len(model_events)
            same = same and event_key(core_events[i]) == event_key(model_events[i])
            lines.append(f"  {'  ' if same else '!!'} {a:<50} | {b}")
        return "\n".join(lines)

    def _report(self, what: str, problems: list[str]) -> str:
        steps = ", ".join(repr(s) for s in self.steps) or "(none)"
        return (
            f"core and model disagree after {what}\n"
            f"tree: {describe_supervisor(self.spec)}\n"
            f"steps: [{steps}]\n" + "\n".join(problems)
        )


def check_against_model(
    spec: Supervisor, schedule: Iterable[Step], *, model: type[Model] = Model, immediate_retries: bool = True
) -> None:
    """Run ``schedule`` through the core and the model; :class:`Disagreement` at the
    first step where they differ. The tree starts as in :func:`simulate`.

    >>> import supervision as sv
    >>> from supervision.testing import Crash, Advance
    >>> async def work(ctx): ...
    >>> check_against_model(sv.Supervisor([sv.child("a", work)]), [Crash("a"), Advance(1)])
    """
    pair = Lockstep(spec, model=model, immediate_retries=immediate_retries)
    steps = list(schedule)
    if not any(isinstance(step, StartTree) for step in steps):
        steps.insert(0, StartTree())
    for step in steps:
        pair.apply(step)
