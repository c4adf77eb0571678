"""The service around a root: the program that ``sv.run`` and ``supervision run`` are.

It owns ``sv.run`` and the service's lifecycle and signals (``run``), the control
protocol (``protocol``), its server (``server``) and its blocking client (``client``),
the commands carried out on a running tree (``commands``, with ``operate`` for
signals and ``all``), ``supervision check`` (``check``), the bookkeeping behind
``status`` and ``logs`` (``recorder``) and systemd's notify protocol and watchdog
(``systemd``).

It may import every layer below it: the core, ``supervision.ready``, the process layer,
reload and the runtime; never ``supervision.testing``. The client, which the short-lived
control commands load, imports only the protocol and the core's errors.
"""
