"""Per-process settings: ``user``, ``group``, ``umask``, ``limits``, ``env_file``,
``nice`` and ``oom_score_adj`` of ``sv.process``.

Three moments, three parts of this module:

- **at spec construction** :func:`settings` checks and normalises what was given
  into a frozen, hashable :class:`Settings` (so a reload compares it like any other
  field); a bad value, or an unknown limit name, is a ``SpecError``.
- **at each start** (in the supervisor) :func:`prepare` resolves names to ids
  (``/etc/passwd`` may change while the tree runs, as systemd resolves at start),
  reads the environment files, and returns the :class:`Step` list to apply in
  the child, in the order that works: limits, priority and OOM score first
  (raising them needs the privileges that the user switch drops), then the umask,
  then groups, gid and uid last. A missing user or environment file raises
  ``OSError`` here: a start failure, and nothing was spawned.
- **in the child, before exec**: the steps run in the exec helper (``_helper``:
  a few bytes per step, no Python in the child), or, where the helper cannot run,
  in ``preexec_fn`` through :func:`apply`. ``PR_SET_PDEATHSIG`` comes after the
  steps in both, since changing credentials clears it.

Why in the child and not from the parent after spawning: ``prlimit(2)`` and
``setpriority(2)`` on the child's pid, or writing ``/proc/PID/oom_score_adj``,
race with the program: it may run (and fork workers that inherit the old values)
before the parent gets there, and a handshake to make it wait costs a round trip
per start. Applied in the child, every setting is in place before the program's
first instruction, and costs a system call each.
"""

from __future__ import annotations

import difflib
import errno as _errno
import grp
import math
import os
import pwd
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._core.errors import SpecError
from .._core.paths import Path
from .._core.settings import LIMIT_NAMES, Limit, Settings
from .._core.spec import INFINITY
from .envfile import load as load_env_files

LIMITS: dict[str, int] = {
    name: getattr(resource, "RLIMIT_" + name.upper())
    for name in LIMIT_NAMES
    if hasattr(resource, "RLIMIT_" + name.upper())
}
"""The limits this system has, by name, and their ``RLIMIT_*`` numbers."""

_UNLIMITED = ("infinity", "unlimited")


def settings(
    path: Path,
    *,
    user: str | int | None = None,
    group: str | int | None = None,
    umask: int | str | None = None,
    limits: Mapping[str, Any] | None = None,
    env_file: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    nice: int | None = None,
    oom_score_adj: int | None = None,
    base: str | None = None,
) -> Settings:
    """Check and normalise the settings given to ``sv.process``; ``SpecError``
    names ``path`` and the field. Relative ``env_file`` paths are made absolute
    against ``base`` (default: the current directory), keeping a leading ``-``."""
    return Settings(
        user=_identity(path, "user", user),
        group=_identity(path, "group", group),
        umask=_umask(path, umask),
        limits=_limits(path, limits),
        env_file=_env_files(path, env_file, base),
        nice=_integer(path, "nice", nice, -20, 19),
        oom_score_adj=_integer(path, "oom_score_adj", oom_score_adj, -1000, 1000),
    )


def _identity(path: Path, field: str, value: Any) -> str | int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise SpecError(path, field, f"must be a name or a numeric id, got {value!r}")
    if isinstance(value, int):
        if not 0 <= value < 2**32 - 1:
            raise SpecError(path, field, f"a numeric id must be in 0..{2**32 - 2}, got {value}")
        return value
    if not isinstance(value, str) or not value or any(c in value for c in "\0:/\n") or value != value.strip():
        raise SpecError(path, field, f"must be a name or a numeric id, got {value!r}")
    return int(value) if value.isdigit() else value


def _umask(path: Path, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, str):  # "022", "0o022": octal, as umask(1) and supervisord read it
        digits = value.removeprefix("0o")
        if not digits or any(c not in "01234567" for c in digits):
            raise SpecError(path, "umask", f"must be octal digits like '022', got {value!r}")
        value = int(digits, 8)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o777:
        raise SpecError(path, "umask", f"must be in 0o000..0o777, got {value!r}")
    return value


def _integer(path: Path, field: str, value: Any, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(path, field, f"must be an integer in {low}..{high}, got {value!r}")
    return value


def _limit_value(path: Path, name: str, value: Any) -> int | None:
    if value is INFINITY or (isinstance(value, str) and value.lower() in _UNLIMITED):
        return None
    if isinstance(value, float) and math.isinf(value) and value > 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise SpecError(
            path, f"limits.{name}", f"must be an integer >= 0 or 'infinity', or a (soft, hard) pair, got {value!r}"
        )
    return value


def _limits(path: Path, limits: Any) -> tuple[Limit, ...]:
    if limits is None:
        return ()
    if not isinstance(limits, Mapping):
        raise SpecError(path, "limits", f"must be a mapping of limit names to values, got {limits!r}")
    found: list[Limit] = []
    for name, value in limits.items():
        if not isinstance(name, str) or name not in LIMITS:
            close = difflib.get_close_matches(str(name), list(LIMITS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known: {', '.join(sorted(LIMITS))}"
            raise SpecError(path, "limits", f"unknown limit {name!r}{hint}")
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise SpecError(path, f"limits.{name}", f"a pair must be (soft, hard), got {value!r}")
            soft, hard = (_limit_value(path, name, item) for item in value)
        else:
            soft = hard = _limit_value(path, name, value)
        if hard is not None and (soft is None or soft > hard):
            raise SpecError(path, f"limits.{name}", f"the soft limit exceeds the hard limit in {value!r}")
        found.append((name, soft, hard))
    return tuple(sorted(found))


def _env_files(path: Path, value: Any, base: str | None) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if isinstance(items, bytes) or not isinstance(items, Sequence):
        raise SpecError(path, "env_file", f"must be a path or a list of paths, got {value!r}")
    files: list[str] = []
    for item in items:
        if isinstance(item, os.PathLike):
            item = os.fspath(item)
        if not isinstance(item, str) or item in ("", "-") or "\0" in item:
            raise SpecError(path, "env_file", f"must be a path or a list of paths, got {item!r}")
        optional = item.startswith("-")
        name = item[1:] if optional else item
        name = os.path.join(base or os.getcwd(), name)  # an absolute name stays as it is
        files.append(("-" if optional else "") + os.path.normpath(name))
    return tuple(files)


# -- at each start: what to apply ------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetLimit:
    resource: int
    name: str
    soft: int | None
    hard: int | None

    def describe(self) -> str:
        def show(value: int | None) -> str:
            return "infinity" if value is None else str(value)

        return f"setting limit {self.name} to {show(self.soft)}:{show(self.hard)}"


@dataclass(frozen=True, slots=True)
class SetNice:
    value: int

    def describe(self) -> str:
        return f"setting nice {self.value}"


@dataclass(frozen=True, slots=True)
class SetOomScoreAdj:
    value: int

    def describe(self) -> str:
        return f"setting oom_score_adj {self.value}"


@dataclass(frozen=True, slots=True)
class SetUmask:
    mask: int

    def describe(self) -> str:
        return f"setting umask {self.mask:03o}"


@dataclass(frozen=True, slots=True)
class SetGroups:
    gids: tuple[int, ...]
    target: str  # "user 'www' (uid 33)", or "group 'www' (gid 33)" without a user

    def describe(self) -> str:
        return f"setting the supplementary groups of {self.target}"


@dataclass(frozen=True, slots=True)
class SetGid:
    gid: int
    target: str

    def describe(self) -> str:
        return f"switching to gid {self.gid} for {self.target}"


@dataclass(frozen=True, slots=True)
class SetUid:
    uid: int
    target: str

    def describe(self) -> str:
        return f"switching to {self.target}"


Step = SetLimit | SetNice | SetOomScoreAdj | SetUmask | SetGroups | SetGid | SetUid

OOM_SCORE_ADJ = "/proc/self/oom_score_adj"


@dataclass(frozen=True, slots=True)
class Prepared:
    """Settings resolved for one start: variables to put under the child's own
    ``env`` (the user's ``HOME``... then the environment files), and the steps."""

    env: dict[str, str]
    steps: tuple[Step, ...]


NOTHING = Prepared({}, ())


def prepare(settings: Settings) -> Prepared:
    """Resolve ``settings`` for a start. Raises ``OSError`` (a start failure) for
    an unknown user or group, or a missing environment file."""
    if not settings:
        return NOTHING
    env: dict[str, str] = {}
    steps: list[Step] = []
    for name, soft, hard in settings.limits:
        steps.append(SetLimit(LIMITS[name], name, soft, hard))
    if settings.nice is not None:
        steps.append(SetNice(settings.nice))
    if settings.oom_score_adj is not None:
        steps.append(SetOomScoreAdj(settings.oom_score_adj))
    if settings.umask is not None:
        steps.append(SetUmask(settings.umask))
    if settings.user is not None or settings.group is not None:
        identity, user_env = _identity_steps(settings.user, settings.group)
        steps.extend(identity)
        env.update(user_env)
    if settings.env_file:
        env.update(load_env_files(settings.env_file))
    return Prepared(env, tuple(steps))


def _identity_steps(user: str | int | None, group: str | int | None) -> tuple[list[Step], dict[str, str]]:
    """setgroups, setresgid, setresuid (in this order: each needs the privilege
    the next one drops), and the variables systemd sets for ``User=``."""
    env: dict[str, str] = {}
    entry: pwd.struct_passwd | None = None
    if user is not None:
        try:
            entry = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
        except KeyError:
            if isinstance(user, str):
                raise LookupFailed(f"no such user {user!r}") from None
    gid: int
    target = ""
    if group is not None:
        try:
            gid = grp.getgrgid(group).gr_gid if isinstance(group, int) else grp.getgrnam(group).gr_gid
        except KeyError:
            if isinstance(group, str):
                raise LookupFailed(f"no such group {group!r}") from None
            gid = group  # a numeric gid without an entry: taken as it is
        target = f"group {group!r} (gid {gid})"
    elif entry is not None:
        gid = entry.pw_gid
    else:
        raise LookupFailed(f"user {user!r} has no passwd entry: give its group too")
    if entry is not None:
        uid = entry.pw_uid
        target = f"user {entry.pw_name!r} (uid {uid})"
        groups = tuple(os.getgrouplist(entry.pw_name, gid))
        env.update(USER=entry.pw_name, LOGNAME=entry.pw_name, HOME=entry.pw_dir, SHELL=entry.pw_shell)
    elif user is not None:
        assert isinstance(user, int)
        uid = user
        target = f"user {uid}"
        groups = (gid,)
    else:
        uid = -1
        groups = (gid,)
    euid = os.geteuid()
    if euid != 0 and uid in (-1, euid) and gid == os.getegid():
        return [], env  # already so: nothing to switch (and no privilege to set groups)
    steps: list[Step] = [SetGroups(groups, target), SetGid(gid, target)]
    if uid != -1:
        steps.append(SetUid(uid, target))
    return steps, env


class LookupFailed(OSError):
    """A user or group of a process child's settings does not exist (a start failure)."""

    def __init__(self, message: str) -> None:
        super().__init__(_errno.ENOENT, message)

    def __str__(self) -> str:
        return str(self.strerror)


def explain(step: Step, code: int) -> str:
    """Why applying ``step`` failed with ``errno`` ``code``, for the start error."""
    reason = os.strerror(code)
    if isinstance(step, (SetGroups, SetGid, SetUid)) and code == _errno.EPERM and os.geteuid() != 0:
        return f"cannot run as {step.target}: the supervisor is not root (it runs as uid {os.geteuid()})"
    return f"{step.describe()}: {reason}"


class SettingFailed(OSError):
    """A process child's setting could not be applied in the child (a start
    failure): ``.step`` says which, ``errno`` why."""

    def __init__(self, step: Step, code: int) -> None:
        self.step = step
        super().__init__(code, explain(step, code))

    def __str__(self) -> str:
        return str(self.strerror)


# -- in the child, without the exec helper ---------------------------------------


def apply(steps: Sequence[Step]) -> None:
    """Apply ``steps`` in this process (a forked child, in ``preexec_fn``).
    Raises :class:`ApplyFailed` with the index of the step that failed."""
    for index, step in enumerate(steps):
        try:
            _apply(step)
        except OSError as exc:
            raise ApplyFailed(index, exc.errno or _errno.EINVAL) from None


class ApplyFailed(Exception):
    def __init__(self, index: int, code: int) -> None:
        super().__init__(index, code)
        self.index = index
        self.code = code


def _apply(step: Step) -> None:
    if isinstance(step, SetLimit):
        infinity = resource.RLIM_INFINITY
        soft = infinity if step.soft is None else step.soft
        hard = infinity if step.hard is None else step.hard
        try:
            resource.setrlimit(step.resource, (soft, hard))
        except ValueError:  # how the resource module reports EINVAL and EPERM alike
            raise OSError(_errno.EPERM, "setrlimit") from None
    elif isinstance(step, SetNice):
        os.setpriority(os.PRIO_PROCESS, 0, step.value)
    elif isinstance(step, SetOomScoreAdj):
        fd = os.open(OOM_SCORE_ADJ, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, str(step.value).encode())
        finally:
            os.close(fd)
    elif isinstance(step, SetUmask):
        os.umask(step.mask)
    elif isinstance(step, SetGroups):
        os.setgroups(list(step.gids))
    elif isinstance(step, SetGid):
        os.setresgid(step.gid, step.gid, step.gid)
    else:
        os.setresuid(step.uid, step.uid, step.uid)
