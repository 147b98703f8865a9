#!/usr/bin/env python3
"""The cost table at every load, in one run: xferwatchd alone (everything on, as live.py runs it)
against auditd alone writing its RAW log under the very rules xferwatchd installed, each load
15 s (idle 20 s):
  idle; exec at 10, 100, 1,000 and 2,000/s (bench/loadgen.c, a loopback connect every 10th);
  TCP connect+accept+close at 2,000 and 10,000/s and UDP sendto at 20,000/s (bench/netload.c);
  the fastest connect and sendto loops, also with no audit rules at all (the host's own cost).
For each: the watcher's CPU seconds (schedstat, to the nanosecond), the ratio, kernel lost records,
the rate the workload reached under each, and xferwatchd's peak RSS.
With --rounds N every load runs N times, the watchers one after another, each round starting with
the next of them, so that the VM's drift and the place in a round hit them alike; each column is
then the median over the rounds (the ratio the median of each round's ratio, lost the sum, RSS the
largest).
Usage (as root): bench/sweep.py [SECONDS] [--no-build] [--rounds N]"""
import os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402

NETLOAD = os.path.join(live.OUT, "netload")
# Start-up (the /proc seed, learning the known programs) is over before a load is measured.
SETTLE_SECONDS = 3


def loads(seconds):
    """(name, command or None for idle, seconds, whether to run it without rules too)."""
    loadgen = os.path.join(live.OUT, "loadgen")
    rows = [("idle", None, 20, False)]
    rows += [(f"exec {rate}/s", [loadgen, str(rate), str(seconds), "10", "9"] + (["vfork"] if rate >= 2000 else []), seconds, False)
             for rate in (10, 100, 1000, 2000)]
    rows += [("TCP connect 2,000/s", [NETLOAD, "connect", "2000", str(seconds)], seconds, False),
             ("TCP connect 10,000/s", [NETLOAD, "connect", "10000", str(seconds)], seconds, False),
             ("UDP sendto 20,000/s", [NETLOAD, "sendto", "20000", str(seconds)], seconds, False),
             ("fastest connect loop", [NETLOAD, "connect", "0", "5"], 5, True),
             ("fastest sendto loop", [NETLOAD, "sendto", "0", "5"], 5, True)]
    return rows


def achieved(line):
    found = re.search(r"\((\d+)(?: exec)?/s\)", line)
    return int(found.group(1)) if found else 0


def run(command, seconds, watched):
    """Runs one load (None: stays idle); returns (CPU seconds of the watched pids, lost, rate)."""
    time.sleep(SETTLE_SECONDS)
    lost = int(live.audit_status()["lost"])
    before = sum(live.cpu_seconds(p) for p in watched())
    if command is None:
        time.sleep(seconds)
        line = ""
    else:
        line = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip()
    time.sleep(1.5)  # let the watcher drain what the load queued
    after = sum(live.cpu_seconds(p) for p in watched())
    return after - before, int(live.audit_status()["lost"]) - lost, achieved(line)


def under_xferwatchd(name, command, seconds):
    agent, rules = live.start_xferwatchd(os.path.join(live.OUT, "sweep-xferwatchd"))
    try:
        cpu, lost, rate = run(command, seconds, lambda: [agent.pid])
        return cpu, lost, rate, live.peak_rss_mb(agent.pid), rules
    finally:
        live.stop_xferwatchd(agent)


def under_auditd(command, seconds, rules):
    directory = os.path.join(live.OUT, "sweep-auditd")
    import shutil
    shutil.rmtree(directory, ignore_errors=True)
    auditd = live.start_auditd(directory, False)
    try:
        live.load_rules(rules)
        return run(command, seconds, lambda: [auditd.pid])
    finally:
        live.remove_bench_rules(rules)
        auditd.terminate()
        auditd.wait(10)
        live.sh("auditctl", "-e", "0", check=False)


def without_rules(command, seconds):
    """The workload alone: audit enabled, no rules, nobody reading."""
    live.sh("auditctl", "-e", "1")
    try:
        return run(command, seconds, lambda: [])[2]
    finally:
        live.sh("auditctl", "-e", "0", check=False)


def median(values):
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def main():
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 1
    arguments = [a for i, a in enumerate(sys.argv[1:], 1) if not a.startswith("--") and sys.argv[i - 1] != "--rounds"]
    seconds = int(arguments[0]) if arguments else 15
    live.prepare("bench/sweep", build="--no-build" not in sys.argv)
    live.sh("gcc", "-O2", "-o", NETLOAD, os.path.join(live.ROOT, "bench/netload.c"))
    print(f"{'load':<22} {'xferwatchd':>10} {'auditd':>7} {'ratio':>6} {'lost x/a':>9} {'rate x / a / no rules':>24} {'RSS MB':>7}")
    peak = 0.0
    for name, command, duration, bare_too in loads(seconds):
        ours, theirs, bares, ratios = [], [], [], []
        for round in range(rounds):
            watchers = ["xferwatchd", "auditd"] + (["none"] if bare_too and command is not None else [])
            # The first to run in a round runs on a machine the previous load left: each watcher
            # takes its turn at that place. auditd gets the rules of the last xferwatchd run
            # (the first round starts with xferwatchd).
            shift = round % len(watchers)
            bare = None
            for watcher in watchers[shift:] + watchers[:shift]:
                if watcher == "xferwatchd":
                    cpu, lost, rate, rss, rules = under_xferwatchd(name, command, duration)
                elif watcher == "auditd":
                    peer, peer_lost, peer_rate = under_auditd(command, duration, rules)
                else:
                    bare = without_rules(command, duration)
            ours.append((cpu, lost, rate, rss))
            theirs.append((peer, peer_lost, peer_rate))
            bares.append(bare)
            if peer >= 0.01:
                ratios.append(cpu / peer)
        cpu, rate = median(o[0] for o in ours), median(o[2] for o in ours)
        lost, rss = sum(o[1] for o in ours), max(o[3] for o in ours)
        peer, peer_rate, peer_lost = median(t[0] for t in theirs), median(t[2] for t in theirs), sum(t[1] for t in theirs)
        bare = median(bares) if bares[0] is not None else None
        peak = max(peak, rss)
        ratio = f"{median(ratios):.2f}" if ratios else "-"
        rates = ""
        if command is not None:
            rates = f"{rate} / {peer_rate}" + (f" / {bare} ({100 * rate / bare:.0f}%/{100 * peer_rate / bare:.0f}%)" if bare else "")
        print(f"{name:<22} {cpu:>10.2f} {peer:>7.2f} {ratio:>6} {f'{lost}/{peer_lost}':>9} {rates:>24} {rss:>7.1f}", flush=True)
    print(f"peak RSS over the sweep: {peak:.1f} MB" + (f"; medians of {rounds} rounds" if rounds > 1 else ""))


if __name__ == "__main__":
    main()
