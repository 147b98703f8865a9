#!/usr/bin/env python3
"""Scaling benchmark: does xferwatchd's CPU per event stay flat as the host grows?
For each host size (idle processes, or idle TCP sockets: connected loopback pairs held by
bench/idle_load.py), xferwatchd starts on that host (it reads every process from /proc), then
the bench/loadgen load runs (fork/exec of /bin/true at RATE/s, a connect to 127.0.0.1:21 every
10th exec, so every 10th event is a flow whose socket is looked up). Printed per size:
xferwatchd's CPU microseconds per execve under load, its CPU per second while the host idles
(pruning and polling, no load), auditd alone's CPU per execve under the same load and rules
for comparison, kernel lost and peak RSS.
Usage (as root): bench/scaling.py [SECONDS] [RATE]     default 10 s at 500 exec/s."""
import os, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live import (OUT as LIVE_OUT, ROOT, cpu_seconds, measure_auditd, peak_rss_mb, prepare, run_load, sh,
                  start_xferwatchd, stop_xferwatchd, wait_for)  # noqa: E402

OUT = os.path.join(os.path.dirname(LIVE_OUT), "scaling")
IDLE_SECONDS = 5
PROCESS_STEPS = [100, 1000, 10000]
SOCKET_STEPS = [100, 5000, 50000]


def start_idle(processes, sockets):
    ready = os.path.join(OUT, "idle.ready")
    if os.path.exists(ready):
        os.remove(ready)
    idle = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench/idle_load.py"), str(processes), str(sockets // 2), ready])
    wait_for(lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 300, "the idle load starting")
    return idle


def stop(process, sig=signal.SIGTERM):
    process.send_signal(sig)
    process.wait(60)


def measure_xferwatchd(rate, seconds):
    agent, rules = start_xferwatchd(os.path.join(OUT, "xferwatchd"), seconds_to_start=60)
    try:
        time.sleep(1)  # past start-up: /proc read, sock_diag sockets open
        before = cpu_seconds(agent.pid)
        time.sleep(IDLE_SECONDS)
        idle = (cpu_seconds(agent.pid) - before) / IDLE_SECONDS
        cpu, lost, line = run_load(rate, seconds, lambda: [agent.pid], port=21)
        return cpu, idle, lost, peak_rss_mb(agent.pid), line, rules
    finally:
        stop_xferwatchd(agent)


def execs(line):
    return int(line.split()[1])


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    prepare("bench/scaling")
    os.makedirs(OUT, exist_ok=True)

    print(f"{rate} exec/s for {seconds} s, a connect to port 21 every 10th exec")
    print(f"{'idle processes':>14} {'idle sockets':>12} {'host procs':>10} {'TCP socks':>9}  "
          f"{'xw us/exec':>10} {'xw idle ms/s':>12} {'auditd us/exec':>14} {'lost':>5} {'xw peak MB':>10}")
    sizes = [(p, 100) for p in PROCESS_STEPS] + [(100, s) for s in SOCKET_STEPS[1:]]
    for processes, sockets in sizes:
        idle = start_idle(processes, sockets)
        try:
            host_processes = sum(1 for name in os.listdir("/proc") if name.isdigit())
            tcp_sockets = len(sh("ss", "-tanH").splitlines())
            cpu, idle_cpu, lost, rss, line, rules = measure_xferwatchd(rate, seconds)
            auditd_cpu, auditd_lost, _, auditd_line = measure_auditd(rate, seconds, rules, False, port=21)
            print(f"{processes:>14} {sockets:>12} {host_processes:>10} {tcp_sockets:>9}  "
                  f"{cpu / execs(line) * 1e6:>10.1f} {idle_cpu * 1000:>12.2f} {auditd_cpu / execs(auditd_line) * 1e6:>14.1f} "
                  f"{lost + auditd_lost:>5} {rss:>10.1f}")
            sys.stdout.flush()
        finally:
            stop(idle)


if __name__ == "__main__":
    main()
