"""OS processes: the operating system's side of a process child.

It owns the ``sv.process`` builder and its OS-aware checks (``spec``), spawning with
``PR_SET_PDEATHSIG`` (``spawn``), the central pidfd reaper (``reaper``), reading ``/proc``
and signalling process groups (``proc``), the per-child notify socket (``notify``), the
output pipes (``output``) and the adoption of a process handed over by a re-exec
(``adopt``). Its objects know a pid, a pidfd, a pipe or a socket, never a supervisor.

It may import the core and ``supervision.ready``; never the runtime, reload or the
service, which are built on it.
"""
