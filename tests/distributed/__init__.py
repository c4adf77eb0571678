"""Snapshot stores and leader-gated supervisors (docs/distributed.md): SQLite, and a real
3-member etcd cluster started by ``etcd_cluster.py`` (Debian's etcd-server, installed by
``.ci/run``). Candidates of ``lease_candidate.py`` and roots of ``supervision run`` are
separate processes, judged by the fencing service of ``fencing.py``."""
