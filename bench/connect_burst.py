#!/usr/bin/env python3
"""Connection burst: PAIRS loopback TCP connections made as fast as Python makes them
(bench/idle_load.py: a connect and an accept each, about a second for 12,500), held, then all
closed at once, under the same rules and the same 8,192-record backlog, watched by
  (a) xferwatchd (everything on, as the package runs it: _xferwatch), and
  (b) auditd alone, writing its RAW log.
Prints per watcher and phase (open, close) the kernel's lost records and the watcher's CPU; for
xferwatchd also its peak RSS and its socket counters (destroy notifications it missed).
Usage (as root): bench/connect_burst.py [PAIRS] [ROUNDS] [--no-build]     default 12,500 pairs, 1 round."""
import os, re, shutil, signal, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live import (OUT as LIVE_OUT, ROOT, audit_status, cpu_seconds, peak_rss_mb, prepare, remove_bench_rules, sh, start_auditd,  # noqa: E402
                  start_xferwatchd, stop_xferwatchd, wait_for)

OUT = os.path.join(os.path.dirname(LIVE_OUT), "connect-burst")
BACKLOG = 8192


def burst(pairs, watched):
    """Opens the pairs, then closes them; returns [(phase, seconds, lost, CPU s)]."""
    ready = os.path.join(OUT, "idle.ready")
    if os.path.exists(ready):
        os.remove(ready)
    rows = []
    lost, cpu, began = int(audit_status()["lost"]), sum(cpu_seconds(p) for p in watched()), time.time()
    idle = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench/idle_load.py"), "0", str(pairs), ready])
    wait_for(lambda: os.path.exists(ready) and os.path.getsize(ready) > 0, 300, "the connections opening")
    took = time.time() - began
    time.sleep(3)
    rows.append(("open", took, int(audit_status()["lost"]) - lost, sum(cpu_seconds(p) for p in watched()) - cpu))
    lost, cpu, began = int(audit_status()["lost"]), sum(cpu_seconds(p) for p in watched()), time.time()
    idle.send_signal(signal.SIGTERM)
    idle.wait(60)
    took = time.time() - began
    time.sleep(3)
    rows.append(("close", took, int(audit_status()["lost"]) - lost, sum(cpu_seconds(p) for p in watched()) - cpu))
    return rows


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    pairs = int(args[0]) if args else 12_500
    rounds = int(args[1]) if len(args) > 1 else 1
    prepare("bench/connect_burst", build="--no-build" not in sys.argv)
    os.makedirs(OUT, exist_ok=True)
    print(f"{pairs} loopback connections ({2 * pairs:,} sockets), backlog {BACKLOG}")
    print(f"{'watcher':<12} {'phase':<6} {'s':>5} {'lost':>7} {'CPU s':>6}  notes")
    for _ in range(rounds):
        directory = os.path.join(OUT, "xferwatchd")
        # As the package runs it (without CAP_NET_ADMIN the destroy notifications' buffer is
        # what net.core.rmem_max allows); at info, its stop summary says what became of them.
        agent, rules = start_xferwatchd(directory, log_level="info", user="_xferwatch")
        sh("auditctl", "-b", str(BACKLOG))  # the agent's default too
        try:
            time.sleep(1)
            rows = burst(pairs, lambda: [agent.pid])
            rss = peak_rss_mb(agent.pid)
        finally:
            stop_xferwatchd(agent)
        log = open(os.path.join(directory, "stderr")).read()
        sockets = re.search(r"sockets: .*", log)
        for phase, took, lost, cpu in rows:
            print(f"{'xferwatchd':<12} {phase:<6} {took:5.1f} {lost:7d} {cpu:6.2f}  peak RSS {rss:.0f} MB" + (f"; {sockets.group(0)}" if phase == "close" and sockets else ""))

        directory = os.path.join(OUT, "auditd")
        shutil.rmtree(directory, ignore_errors=True)
        auditd = start_auditd(directory, False)
        try:
            sh("auditctl", "-b", str(BACKLOG))
            sh("auditctl", "--backlog_wait_time", "0")
            for rule in rules:
                sh("auditctl", *rule.split())
            sh("auditctl", "-e", "1")
            rows = burst(pairs, lambda: [auditd.pid])
        finally:
            remove_bench_rules(rules)
            auditd.send_signal(signal.SIGTERM)
            auditd.wait(10)
            sh("auditctl", "-e", "0", check=False)
        for phase, took, lost, cpu in rows:
            print(f"{'auditd':<12} {phase:<6} {took:5.1f} {lost:7d} {cpu:6.2f}")


if __name__ == "__main__":
    main()
