"""Connect load for bench/flows: COUNT short-lived processes, RATE per second, each opening an
FTP control connection to HOST:PORT (banner, QUIT, close) and exiting. PIDS_FILE gets one line
per client: its pid and the wall-clock time (seconds) just before its connect()."""
import os, socket, sys, time

host, port, count, rate, pids_file = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
pids = []
reader, writer = os.pipe()
start = time.monotonic()
for i in range(count):
    delay = start + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    pid = os.fork()
    if pid == 0:
        try:
            os.write(writer, f"{os.getpid()} {time.time():.6f}\n".encode())
            s = socket.create_connection((host, port), timeout=5)
            s.recv(256)
            s.sendall(b"QUIT\r\n")
            s.recv(256)
            s.close()
        finally:
            os._exit(0)
    pids.append(pid)
    # Reap finished children as we go.
    while True:
        try:
            done, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if done == 0:
            break
for _ in range(len(pids)):
    try:
        os.wait()
    except ChildProcessError:
        break
os.close(writer)
with os.fdopen(reader) as lines, open(pids_file, "w") as f:
    f.write(lines.read())
