"""The pure core: what a supervision tree is and how a supervisor decides, with no I/O.

It owns the specs (``spec``), the typed events (``events``), every error (``errors``),
paths (``paths``), the reload diff (``diff``) and the plan it makes with a running
tree's statuses (``plan``, for ``reload --dry-run``) and the fingerprints it compares code with
(``fingerprint``), snapshots and their migration (``snapshot``), and one supervisor's
restart logic as a state machine (``machine``), whose inputs and effects are values of
their own (``messages``, ``status``), as h11 keeps its events apart from its state.

It may import the standard library's pure modules, ``pyrsistent`` and
``supervision.ready``; never asyncio, os, time, socket, subprocess, signal or
threading, nor any other layer of ``supervision``. Time and randomness come in as
arguments. ``tests/test_layers.py`` keeps it so; the simulator of
``supervision.testing`` and the asyncio runtime both drive this same code.
"""
