"""Many identical children from one spec: templates, dynamic supervisors, instances. Pure.

A :class:`DynamicSupervisor` (Elixir's DynamicSupervisor, OTP's
``simple_one_for_one``) starts empty; each ``start_child(*args, **kwargs)`` makes
a child from its :class:`Template` with those arguments. An *instance group*
(``sv.process(..., instances=N)``) is a dynamic supervisor whose children are
declared: ``0`` ... ``N-1``, each made from the template with ``{instance}``
substituted; ``supervision scale`` changes their number at runtime.

Everything here is a value: making a child spec from a template does no I/O, so
the core calls it when it decides to start a child.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .paths import Path
from .settings import LogFile
from .spec import INFINITY, ChildSpec, Process, Restart, Supervisor, _is_async_function, _number

Args = tuple[tuple[Any, ...], tuple[tuple[str, Any], ...]]
"""The arguments of one ``start_child`` call: positional, and keyword as sorted pairs."""

NO_ARGS: Args = ((), ())

_UNSET: Any = object()


@dataclass(frozen=True, slots=True, eq=False)
class Bound:
    """A worker function with the arguments of one ``start_child`` call:
    the child runs ``function(ctx, *args, **kwargs)``.

    Compared (and fingerprinted by a reload) by its fields, so the same
    arguments under an unchanged function are the same child.
    """

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __call__(self, ctx: Any) -> Any:
        # The worker's own coroutine, not one wrapping it: no extra frame per step.
        # (Only templates make a Bound, and a template was checked to be async.)
        return self.function(ctx, *self.args, **dict(self.kwargs)) if self.kwargs else self.function(ctx, *self.args)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bound):
            return NotImplemented
        return self.function is other.function and self.args == other.args and self.kwargs == other.kwargs

    def __hash__(self) -> int:
        return hash((id(self.function), len(self.args), len(self.kwargs)))


def substitute(text: str, values: Mapping[str, str]) -> str:
    """Replace each ``{key}`` of ``values`` in ``text``; other braces are left alone
    (a shell command's ``${HOME}`` or ``{}`` stays as written).

    >>> substitute("web-{instance}.log {} ${HOME}", {"instance": "3"})
    'web-3.log {} ${HOME}'
    """
    if "{" not in text:
        return text
    for key, value in values.items():
        text = text.replace("{" + key + "}", value)
    return text


def substitute_process(process: Process, values: Mapping[str, str], extra_argv: Sequence[str] = ()) -> Process:
    """A process spec with ``{key}`` substituted in argv, env, cwd and output
    path (like supervisord's ``%(process_num)d``), and ``extra_argv`` appended."""
    argv = tuple(substitute(item, values) for item in process.argv) + tuple(extra_argv)
    env = None if process.env is None else tuple((k, substitute(v, values)) for k, v in process.env)
    cwd = None if process.cwd is None else substitute(process.cwd, values)
    output = process.output
    if isinstance(output, LogFile):
        output = dataclasses.replace(output, path=substitute(output.path, values))
    elif isinstance(output, str) and output not in ("prefix", "inherit"):
        output = substitute(output, values)
    return dataclasses.replace(process, argv=argv, env=env, cwd=cwd, output=output)


_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(ChildSpec) if f.name not in ("id", "start"))
_SLOTS = tuple(getattr(ChildSpec, name).__set__ for name in _SPEC_FIELDS)
_SET_ID = getattr(ChildSpec, "id").__set__  # noqa: B009  (a slot's descriptor; mypy sees an attribute)
_SET_START = getattr(ChildSpec, "start").__set__  # noqa: B009


def _clone(spec: ChildSpec, id: str, start: Any) -> ChildSpec:
    """``spec`` with another id and start, without validating it again: the
    template was validated once, and a dynamic supervisor may make 100 000
    children from it. (Through the slots' descriptors: a frozen dataclass's
    ``__setattr__`` refuses.)"""
    new = object.__new__(ChildSpec)
    for setter, name in zip(_SLOTS, _SPEC_FIELDS, strict=True):
        setter(new, getattr(spec, name))
    _SET_ID(new, id)
    _SET_START(new, start)
    return new


@dataclass(frozen=True, slots=True)
class Template:
    """The child spec every child of a dynamic supervisor is made from.

    ``spec`` is a worker's or a process's child spec; its id only names the
    template (in ``repr`` and errors), each child gets its own id.
    """

    spec: ChildSpec

    @property
    def kind(self) -> str:
        return self.spec.kind

    def child(self, id: str, args: Args = NO_ARGS) -> ChildSpec:
        """The spec of the child ``id``, started with ``args``.

        A worker runs ``function(ctx, *args, **kwargs)``. A process gets the
        positional arguments appended to its argv (as OTP appends them to the
        template's argument list), and ``{id}``, ``{instance}`` (the same) and
        each keyword argument substituted in argv, env, cwd and output path.
        ``TypeError`` if a process's arguments are not strings or numbers.
        """
        positional, keywords = args
        start = self.spec.start
        if isinstance(start, Process):
            values = {"id": id, "instance": id}
            for key, value in keywords:
                values[key] = _text(value, key)
            extra = [_text(value, f"args[{n}]") for n, value in enumerate(positional)]
            return _clone(self.spec, id, substitute_process(start, values, extra))
        if positional or keywords:
            start = Bound(start, positional, keywords)
        return _clone(self.spec, id, start)


def _text(value: object, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"a process template takes strings and numbers, got {value!r} for {where}")


def pack_args(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Args:
    """``start_child``'s arguments as an :data:`Args` value."""
    return (tuple(args), tuple(sorted(kwargs.items())))


def make_template(template: Any, restart: Restart | str | None, path: Path = ()) -> Template:
    """A :class:`Template` from what ``DynamicSupervisor`` was given: a child spec
    (``sv.child`` / ``sv.process``), an ``async def f(ctx, ...)`` function, or an
    argv list. Children are temporary unless ``restart`` (or, for a child
    spec, its own ``restart``) says otherwise."""
    if isinstance(template, Template):
        spec = template.spec
    elif isinstance(template, ChildSpec):
        spec = template
    elif _is_async_function(template):
        name = getattr(template, "__name__", "worker")
        spec = ChildSpec(name if name and "/" not in name else "worker", template, restart=Restart.TEMPORARY)
    elif isinstance(template, Sequence) and not isinstance(template, (str, bytes)):
        spec = ChildSpec("process", Process(tuple(template)), restart=Restart.TEMPORARY)
    else:
        raise SpecError(
            path,
            "template",
            f"must be an 'async def' function, an argv list or a child spec (sv.child, sv.process), got {template!r}",
        )
    if spec.kind == "supervisor":
        raise SpecError(path, "template", "must be a worker or a process, not a supervisor")
    if spec.significant:
        raise SpecError(path, "template", "the children of a dynamic supervisor cannot be significant")
    if restart is not None:
        spec = dataclasses.replace(spec, restart=restart)  # type: ignore[arg-type]  # normalised by ChildSpec
    return Template(spec)


class DynamicSupervisor(Supervisor):
    """A supervisor of many children made from one template, started on demand.

    After Elixir's ``DynamicSupervisor`` and OTP's ``simple_one_for_one``: it
    starts empty; ``await handle.start_child(*args, **kwargs)`` starts a child
    from ``template`` with those arguments and returns its id (``"1"``,
    ``"2"``, ... in this incarnation of the supervisor). ``template`` is an
    ``async def f(ctx, *args, **kwargs)`` worker, an argv list (the arguments
    are appended, keyword arguments fill ``{key}`` placeholders), or a child
    spec built with ``sv.child`` / ``sv.process``.

    Children are ``temporary`` by default (a function or argv template);
    ``restart=`` says otherwise, and a child spec template keeps its own
    ``restart``. ``max_children`` bounds the children alive at once:
    ``start_child`` beyond it raises ``TooManyChildren``. The strategy is
    ``one_for_one``; ``intensity`` and ``period`` count the restarts of all its
    children together. Stopping it stops its children **concurrently** (OTP
    does so for ``simple_one_for_one``): they have no order to keep.

    >>> async def handle(ctx, reader, writer): ...
    >>> conns = DynamicSupervisor(handle, max_children=1000)
    >>> conns.template.spec.restart
    <Restart.TEMPORARY: 'temporary'>

    In a tree, ``sv.child("conns", conns)``; then, for each connection,
    ``id = await tree.at("conns").start_child(reader, writer)``.
    """

    template: Template
    max_children: int | None
    instances: int | None

    _FIELDS = (*Supervisor._FIELDS, "template", "max_children", "instances")

    def __init__(
        self,
        template: Any,
        *,
        max_children: int | None = None,
        restart: Restart | str | None = None,
        intensity: int = _UNSET,
        period: float = _UNSET,
        backoff: Any = _UNSET,
        instances: int | None = None,
        strategy: Any = _UNSET,
        auto_shutdown: Any = _UNSET,
        children: Iterable[ChildSpec] = (),
    ) -> None:
        path: Path = ()
        if strategy is not _UNSET and str(strategy) != "one_for_one":
            raise SpecError(path, "strategy", "a dynamic supervisor's strategy is one_for_one")
        if auto_shutdown is not _UNSET and str(auto_shutdown) != "never":
            raise SpecError(path, "auto_shutdown", "a dynamic supervisor has no significant children")
        made = make_template(template, restart, path)
        if max_children is not None:
            _number(max_children, path, "max_children", integer=True)
        if instances is not None:
            _number(instances, path, "instances", integer=True)
            if max_children is not None and instances > max_children:
                raise SpecError(path, "instances", f"{instances} exceeds max_children={max_children}")
        settings: dict[str, Any] = {
            k: v for k, v in (("intensity", intensity), ("period", period), ("backoff", backoff)) if v is not _UNSET
        }
        # The children: none (started on demand), or the instances, declared.
        declared = tuple(made.child(str(n)) for n in range(instances)) if instances is not None else ()
        del children  # accepted so that Supervisor.replace() can call us; always derived
        super().__init__(declared, strategy="one_for_one", auto_shutdown="never", **settings)
        object.__setattr__(self, "template", made)
        object.__setattr__(self, "max_children", max_children)
        object.__setattr__(self, "instances", instances)

    def replace(self, **changes: Any) -> Supervisor:
        values = self.settings()
        values.pop("strategy")
        values.pop("auto_shutdown")
        changes.pop("children", None)
        values.update(changes)
        template = values.pop("template")
        return type(self)(template, **values)

    def __repr__(self) -> str:
        count = "" if self.instances is None else f", instances={self.instances}"
        limit = "" if self.max_children is None else f", max_children={self.max_children}"
        return f"{type(self).__name__}({self.template.spec.id!r} {self.template.kind}{count}{limit})"


def instance_group(spec: ChildSpec, instances: int) -> ChildSpec:
    """``sv.process(id, ..., instances=N)``: the child ``id``, a supervisor of N
    copies of the process, ``id/0`` ... ``id/N-1`` (see ``docs/processes.md``).

    The copies take the process's ``restart``; the group is permanent, waits for
    them to stop (``shutdown=INFINITY``), and counts their restarts in its own
    window: the process's ``intensity``/``period`` if given, else the defaults.
    """
    path: Path = (spec.id,)
    _number(instances, path, "instances", integer=True)
    template = dataclasses.replace(spec, intensity=None)
    limits: dict[str, Any] = {}
    if spec.intensity is not None:
        limits = {"intensity": spec.intensity, "period": spec.period}
    group = DynamicSupervisor(template, instances=instances, **limits)
    return ChildSpec(spec.id, group, shutdown=INFINITY)


def is_instance_group(spec: Supervisor) -> bool:
    return isinstance(spec, DynamicSupervisor) and spec.instances is not None
