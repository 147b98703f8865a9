"""Idle load for bench/flows and bench/scaling: PROCESSES sleeping processes and PAIRS connected
loopback TCP pairs (2 sockets each), held until killed. Pairs are spread over holder processes
that each stay within the descriptor limit. Writes READY_FILE (a listener's port) once up."""
import os, resource, signal, socket, subprocess, sys

processes, pairs, ready_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
per_holder = max(1, min(pairs, (hard - 256) // 2))
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 2 * per_holder + 256), hard))
sleepers = [subprocess.Popen(["sleep", "3600"]) for _ in range(processes)]


def hold(count):
    """Makes `count` pairs on a listener of its own; returns the listener's port and the sockets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    held = [listener]
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))
        server, _ = listener.accept()
        held += [client, server]
    return listener.getsockname()[1], held


holders = []
left = pairs - per_holder
while left > 0:
    count = min(per_holder, left)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read)
        _, kept = hold(count)
        os.write(write, b"1")
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        signal.pause()
        os._exit(0)
    os.close(write)
    os.read(read, 1)  # this holder is up
    holders.append(child)
    left -= count
port, held = hold(min(per_holder, pairs))


def stop(*_):
    for p in sleepers:
        p.kill()
    for pid in holders:
        os.kill(pid, signal.SIGTERM)
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
with open(ready_file, "w") as f:
    f.write(str(port))
signal.pause()
