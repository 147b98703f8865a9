#!/usr/bin/env python3
"""What the kernel's audit rules cost the host's own work, rule by rule: the fastest TCP connect
loop and the fastest UDP sendto loop (bench/netload.c), each run with audit off, audit on
without rules, one rule that never matches the load, the agent's rules without sendto/sendmsg,
all of the agent's rules with and without the exclusion of PROCTITLE records, those with EOE
records excluded too, and those with the never rule that quiets a datagram flood. The records go
to bench/auditdrain.c, a reader that throws them away, so the figures are the kernel's cost in
the audited process, not any consumer's.
Prints the rate kept and the cost per loop iteration over audit off.
Usage (as root): bench/rule_cost.py [SECONDS] [--no-build]"""
import os, re, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402

NETLOAD = os.path.join(live.OUT, "netload")
DRAIN = os.path.join(live.OUT, "auditdrain")


def agent_rules():
    """The rules xferwatchd installs, re-keyed so they can be loaded without it."""
    agent, rules = live.start_xferwatchd(os.path.join(live.OUT, "rule-cost-xferwatchd"))
    live.stop_xferwatchd(agent)
    return rules


def without_syscalls(rule, names):
    """An `auditctl -l` line with `names` taken out of its -S list."""
    words = rule.split()
    if "-S" in words:
        at = words.index("-S") + 1
        words[at] = ",".join(name for name in words[at].split(",") if name not in names)
    return " ".join(words)


def rate_under(rules, enabled, load, seconds):
    """The loop's rate and the kernel's lost records with `rules` loaded and drained. Only the
    rules it loaded are deleted afterwards: the host's own stay."""
    live.sh("auditctl", "-e", "0")
    drain = None
    if enabled:
        drain = subprocess.Popen([DRAIN], stdout=subprocess.PIPE, text=True)
        live.wait_for(lambda: live.audit_status().get("pid") == str(drain.pid), 5, "auditdrain taking the stream")
        live.load_rules(rules)
    try:
        lost = int(live.audit_status()["lost"])
        line = subprocess.run([NETLOAD, load, "0", str(seconds)], check=True, capture_output=True, text=True).stdout
        found = re.search(r"\((\d+)/s\)", line)
        return int(found.group(1)) if found else 0, int(live.audit_status()["lost"]) - lost
    finally:
        live.remove_bench_rules(rules)
        live.sh("auditctl", "-e", "0", check=False)
        if drain:
            drain.terminate()
            drain.wait(10)


def main():
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    seconds = int(arguments[0]) if arguments else 5
    live.prepare("bench/rule_cost", build="--no-build" not in sys.argv)
    live.sh("gcc", "-O2", "-o", NETLOAD, os.path.join(live.ROOT, "bench/netload.c"))
    live.sh("gcc", "-O2", "-o", DRAIN, os.path.join(live.ROOT, "bench/auditdrain.c"))
    ours = agent_rules()
    without_sends = [without_syscalls(rule, {"sendto", "sendmsg"}) for rule in ours]
    configurations = [
        ("audit off", None, False),
        ("audit on, no rules", [], True),
        ("one rule, never matching (execve)", ["-a always,exit -F arch=b64 -S execve -F key=xwbench"], True),
        ("agent's rules without sendto/sendmsg", without_sends, True),
        ("agent's rules, PROCTITLE made", [r for r in ours if "exclude" not in r], True),
        ("agent's rules (PROCTITLE excluded)", ours, True),
        # What datagram_flood_rate does for a flood, by exe here (the loop's pid is not known yet).
        # Fewer records per event: does the record count drive the cost, or the event itself?
        ("agent's rules, EOE excluded too", ours + ["-a always,exclude -F msgtype=EOE -F uid>=0"], True),
        ("agent's rules, the loop quieted", ours + [f"-A never,exit -F arch=b64 -S sendto,sendmsg -F exe={NETLOAD} -F key=xwbench"], True),
    ]
    print(f"{'rules':<38} {'connect/s':>10} {'kept':>5} {'us/iter':>8} {'lost':>7} {'sendto/s':>10} {'kept':>5} {'us/iter':>8} {'lost':>7}")
    base = {}
    for name, rules, enabled in configurations:
        cells = []
        for load in ("connect", "sendto"):
            rate, lost = rate_under(rules or [], enabled, load, seconds)
            base.setdefault(load, rate)
            cost = 1e6 / rate - 1e6 / base[load] if rate else float("nan")
            cells.append(f"{rate:>10,} {100 * rate / base[load]:>4.0f}% {cost:>8.2f} {lost:>7,}")
        print(f"{name:<38} {' '.join(cells)}", flush=True)


if __name__ == "__main__":
    main()
