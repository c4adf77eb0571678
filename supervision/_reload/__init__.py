"""Reload and re-exec: where a tree's spec comes from, and how a running root is
replaced without losing its OS children.

It owns targets (``target``: a spec, a builder, ``"pkg.module:build"``, a file),
TOML services files (``services``) and their conversion from supervisord's
(``supervisord``), re-importing the tree's modules atomically
(``modules``) and the re-exec handover (``reexec``: the pre-exec check, the handover
document, ``execve``, and reading it back in the new image). It computes and carries
data (a new spec, a handover) that the runtime applies; what it needs of a running
tree it asks through the Tree's internal API, passed in.

It may import the core, ``supervision.ready`` and the process layer; never the
runtime or the service, which call it.
"""
