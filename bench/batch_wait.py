#!/usr/bin/env python3
"""What `[audit] batch_wait_ms` costs and buys under an exec storm: for each value, xferwatchd's
CPU seconds and how many of the storm's processes were gone before their /proc read, then auditd
alone under the same rules, in every round (pairs taken close together drift alike).
Usage (as root): bench/batch_wait.py [ROUNDS] [SECONDS] [RATE] [MS...]
default 2 rounds of 10 s at 1000 exec/s for 0, 4, 8 and 16 ms."""
import os, re, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402


def main():
    numbers = [int(a) for a in sys.argv[1:]]
    rounds, seconds, rate = (numbers[:3] + [2, 10, 1000][len(numbers[:3]):])
    waits = numbers[3:] or [0, 4, 8, 16]
    live.prepare("bench/batch_wait")
    for i in range(rounds):
        cells = []
        for wait in waits:
            cpu, lost, _, _, rules = live.measure_xferwatchd(rate, seconds, log_level="info", audit=f"batch_wait_ms = {wait}")
            log = open(os.path.join(live.OUT, f"xferwatchd-{rate}", "stderr")).read()
            counts = re.search(r"processes \d+ held, (\d+) execs, .*?(\d+) gone before read,", log)
            execs, gone = (int(counts.group(1)), int(counts.group(2))) if counts else (0, 0)
            cells.append(f"{wait} ms: {cpu:.2f} CPU-s, lost {lost}, gone before /proc read {100 * gone / max(execs, 1):.0f}%")
        peer, peer_lost, _, _ = live.measure_auditd(rate, seconds, rules, False)
        print(f"round {i + 1}: " + " | ".join(cells) + f" | auditd alone {peer:.2f} CPU-s, lost {peer_lost}", flush=True)


if __name__ == "__main__":
    main()
