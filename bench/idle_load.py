"""Idle load for bench/flows: PROCESSES sleeping processes and PAIRS connected loopback TCP
pairs (2 sockets each), held until killed. Writes READY_FILE (with the listener's port) once up."""
import os, resource, signal, socket, subprocess, sys

processes, pairs, ready_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
resource.setrlimit(resource.RLIMIT_NOFILE, (2 * pairs + 1024, 2 * pairs + 1024))
sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(processes)]
listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen(4096)
port = listener.getsockname()[1]
held = []
for _ in range(pairs):
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    held += [client, server]

def stop(*_):
    for p in sleepers:
        p.kill()
    sys.exit(0)

signal.signal(signal.SIGTERM, stop)
with open(ready_file, "w") as f:
    f.write(str(port))
signal.pause()
