"""The asyncio runtime: the thin shell that executes the core's effects.

It owns the public face of a running tree (``tree``: ``sv.start``, ``Tree``, ``Handle``,
and the Tree's internal API ``runner_at(path)`` and ``walk()``), one runner per
supervisor (``runner``), the incarnations of workers (``incarnation``), of OS processes
(``process``) and of nested supervisors, the event hub (``hub``), clocks (``clock``)
and the worker's context (``context``). It holds no restart logic of its own: every
decision is the core's.

It may import the core, ``supervision.ready``, the process layer and the reload layer;
never the service or ``supervision.testing``.
"""
