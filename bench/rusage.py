#!/usr/bin/env python3
"""Runs a command and prints its CPU seconds (user+sys, microsecond resolution, unlike
/usr/bin/time's 10 ms) and peak RSS in KiB: rusage.py OUT_FILE COMMAND..."""
import os, resource, sys

pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_utime:.6f} {usage.ru_stime:.6f} {usage.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status))
