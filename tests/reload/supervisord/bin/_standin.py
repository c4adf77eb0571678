"""A stand-in for a daemon the supervisord fixtures run (gunicorn, nginx, celery...).

It prints what it was started as, then waits until it is told to stop
(SIGTERM, SIGINT, SIGQUIT or SIGHUP: exit status 0).
"""

import signal
import sys
import time

name = sys.argv[1]
print(f"{name} started: {' '.join(sys.argv[2:])}", flush=True)
for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
    signal.signal(number, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
