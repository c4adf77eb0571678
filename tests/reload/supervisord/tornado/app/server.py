"""A stand-in for a Tornado application server: one process per port."""

import signal
import sys
import time

port = next((arg.split("=", 1)[1] for arg in sys.argv[1:] if arg.startswith("--port=")), "8888")
print(f"tornado: serving on port {port}", flush=True)
signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
while True:
    time.sleep(3600)
