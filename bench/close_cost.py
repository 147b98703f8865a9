#!/usr/bin/env python3
"""What listening for socket closes costs the host: the fastest TCP connect loop (bench/netload.c)
with nobody subscribed to sock_diag's destroy notifications, with a listener reading each one
(bench/closedrain.c, as the agent does), and with one reading none (the kernel's side alone);
first without audit rules, then under the agent's rules drained by bench/auditdrain.c. The
loops alternate within each round; medians of the rounds, and the share of the first row kept.
Usage (as root): bench/close_cost.py [ROUNDS] [--no-build]"""
import os, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402
import rule_cost  # noqa: E402

CLOSEDRAIN = os.path.join(live.OUT, "closedrain")


def rate_beside(listener, rules, enabled):
    """The connect loop's rate for 5 s with `listener` ("read", "none" or None) subscribed."""
    drain = None
    if listener:
        drain = subprocess.Popen([CLOSEDRAIN, listener], stdout=subprocess.PIPE, text=True)
        if drain.stdout.readline().strip() != "subscribed":
            raise SystemExit("closedrain could not subscribe")
    try:
        return rule_cost.rate_under(rules, enabled, "connect", 5)[0]
    finally:
        if drain:
            drain.terminate()
            drain.wait(10)


def main():
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    rounds = int(arguments[0]) if arguments else 3
    live.prepare("bench/close_cost", build="--no-build" not in sys.argv)
    for source, binary in (("netload.c", rule_cost.NETLOAD), ("auditdrain.c", rule_cost.DRAIN), ("closedrain.c", CLOSEDRAIN)):
        live.sh("gcc", "-O2", "-o", binary, os.path.join(live.ROOT, "bench", source))
    ours = rule_cost.agent_rules()
    rows = [(f"{rules_name}, {listener_name}", listener, rules, enabled)
            for rules_name, rules, enabled in (("no audit rules", [], False), ("the agent's rules", ours, True))
            for listener_name, listener in (("no close listener", None), ("a listener reading each", "read"), ("a listener reading none", "none"))]
    rates = {name: [] for name, *_ in rows}
    for _ in range(rounds):
        for name, listener, rules, enabled in rows:
            rates[name].append(rate_beside(listener, rules, enabled))
    base = None
    print(f"{'connect loop':<48} {'connects/s':>10} {'kept':>5}   (median of {rounds})")
    for name, *_ in rows:
        rate = sorted(rates[name])[len(rates[name]) // 2]
        base = base or rate
        print(f"{name:<48} {rate:>10,} {100 * rate / base:>4.0f}%", flush=True)


if __name__ == "__main__":
    main()
