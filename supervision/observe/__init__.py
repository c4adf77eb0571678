"""Observability: what a running tree looks like from outside.

What this package owns:

- ``procstat``: CPU, RSS, open fds and threads of each process child, summed
  over its whole process tree, read from ``/proc`` on request (never by a timer);
- ``counters``: what the events say beyond ``which_children()`` (start failures,
  reloads, recent restarts, the root's give-up), bounded;
- ``figures``: the status JSON of the control protocol, walked and judged
  (health, readiness, intensity fill), and events as JSON;
- ``metrics`` (extra ``supervision[http]``): a Prometheus collector that reads
  the status at scrape time;
- ``http`` (extra ``supervision[http]``): ``/metrics``, ``/healthz``, ``/readyz``,
  ``/api/tree``, server-sent events and the dashboard in ``static/``;
- ``top`` (extra ``supervision[top]``): the live terminal view;
- ``logs``: JSON log lines and journald's native protocol;
- ``termination``: the termination message a Kubernetes pod shows on give-up;
- ``tokens``: the token that lets the dashboard act on the tree;
- ``observer``, ``service`` and ``cli``: what the service layer calls (the
  figures on a status, the HTTP endpoint's lifetime, the command-line options
  and the ``top`` and ``dashboard`` commands).

What it may import: the standard library and the core (its events); the
extras (``aiohttp``, ``prometheus_client``, ``rich``) only in the modules that
need them, which nothing imports unless the user asked for that feature. It sits
below the service layer, which composes it (``sv.run(http=...)``, the figures of
``status``), and never imports the process layer, reload, the runtime or the
service: everything here works on a small, explicit interface (the status JSON,
an async iterator of events, an async command callable), so it is tested against
real processes and a real HTTP server without a running ``sv.run``.
"""
