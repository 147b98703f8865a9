#!/usr/bin/env python3
"""xferwatchd against auditd alone, in alternation: ROUNDS pairs of SECONDS at RATE exec/s, each
pair xferwatchd first, then auditd under the very rules xferwatchd installed. Pairs taken close
together suffer the VM's drift alike, so their ratio moves less than separate runs do.
Usage (as root): bench/paired.py [ROUNDS] [SECONDS] [RATE]   default 3 rounds of 10 s at 1000 exec/s."""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402


def main():
    rounds, seconds, rate = [int(a) for a in sys.argv[1:4]] + [3, 10, 1000][len(sys.argv[1:4]):]
    live.prepare("bench/paired")
    ratios = []
    for i in range(rounds):
        cpu, lost, rss, _, rules = live.measure_xferwatchd(rate, seconds)
        peer, peer_lost, _, _ = live.measure_auditd(rate, seconds, rules, False)
        ratios.append(cpu / peer)
        print(f"round {i + 1}: xferwatchd {cpu:.2f} CPU-s (lost {lost}, {rss:.1f} MB), auditd {peer:.2f} CPU-s (lost {peer_lost}): "
              f"ratio {cpu / peer:.2f}", flush=True)
    ratios.sort()
    print(f"median ratio {ratios[len(ratios) // 2]:.2f} over {rounds} rounds of {seconds} s at {rate} exec/s")


if __name__ == "__main__":
    main()
