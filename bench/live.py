#!/usr/bin/env python3
"""Live benchmark: the same load (bench/loadgen.c: fork/exec of /bin/true at RATE/s, a loopback
connect every 10th exec) under the same kernel audit rules, watched by
  (a) auditd alone, writing its RAW log,
  (b) auditd with laurel as its plugin,
  (c) xferwatchd alone in unicast mode, everything on (process model, /proc, flows, detection,
      YARA, the alert file).
For each rate it prints the CPU seconds the watcher used during the load (schedstat of every
process involved, from /proc), kernel lost records, peak RSS and the achieved rate.
Usage (as root): bench/live.py [SECONDS] [RATE...]   default 15 s at 500, 1000 and 2000 exec/s."""
import os, re, shutil, signal, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench/out/live")


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True).stdout


def audit_status():
    return dict(line.split(" ", 1) for line in sh("auditctl", "-s").splitlines() if " " in line)


def cpu_seconds(pid):
    """The CPU time of `pid`'s threads to the nanosecond (schedstat), not in the 10 ms ticks of
    /proc/<pid>/stat: a watcher's cost at 10 exec/s is a few ticks. Every watcher measured here
    keeps its threads for its whole run, so the live threads are all of them."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def peak_rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_for(condition, seconds, what):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise SystemExit(f"bench/live: {what} did not happen")


def run_load(rate, seconds, watched, port=9):
    """Runs loadgen (a connect to `port` every 10th exec); returns (CPU seconds of the watched
    pids during the load, lost, loadgen's line)."""
    lost = int(audit_status()["lost"])
    before = sum(cpu_seconds(p) for p in watched())
    line = sh(os.path.join(OUT, "loadgen"), str(rate), str(seconds), "10", str(port)).strip()
    time.sleep(1.5)  # let the watcher drain what the load queued
    after = sum(cpu_seconds(p) for p in watched())
    return after - before, int(audit_status()["lost"]) - lost, line


def start_auditd(directory, laurel):
    os.makedirs(os.path.join(directory, "plugins"), exist_ok=True)
    conf = os.path.join(directory, "auditd.conf")
    with open(conf, "w") as f:
        f.write(f"""local_events = yes
write_logs = yes
log_file = {directory}/audit.log
log_format = RAW
flush = INCREMENTAL_ASYNC
freq = 50
max_log_file = 0
max_log_file_action = IGNORE
space_left = 2
admin_space_left = 1
disk_full_action = IGNORE
q_depth = 65536
overflow_action = IGNORE
plugin_dir = {directory}/plugins
""")
    os.chmod(conf, 0o640)
    if laurel:
        os.makedirs(os.path.join(directory, "laurel"), exist_ok=True)
        with open(os.path.join(directory, "laurel.toml"), "w") as f:
            f.write(f"""directory = "{directory}/laurel"
[auditlog]
file = "laurel.log"
size = 100000000000
generations = 1
[transform]
execve-argv = [ "array" ]
[enrich]
pid = true
container = true
script = true
""")
        with open(os.path.join(directory, "plugins/laurel.conf"), "w") as f:
            f.write(f"active = yes\ndirection = out\npath = /usr/sbin/laurel\ntype = always\n"
                    f"args = --config {directory}/laurel.toml\nformat = string\n")
    auditd = subprocess.Popen(["auditd", "-n", "-c", directory], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: audit_status().get("pid") == str(auditd.pid), 5, "auditd taking the audit pid")
    return auditd


def remove_bench_rules(rules):
    """Deletes what `load_rules` loaded of `rules`: those keyed xwbench, and the exclude rules
    (they carry no key; the agent's carries its mark)."""
    sh("auditctl", "-D", "-k", "xwbench", check=False)
    for rule in rules:
        if rule.startswith("-a always,exclude"):
            sh("auditctl", *rule.replace("-a ", "-d ", 1).split(), check=False)


def load_rules(rules):
    sh("auditctl", "-b", "16384")
    sh("auditctl", "--backlog_wait_time", "0")
    for rule in rules:
        sh("auditctl", *rule.split())
    sh("auditctl", "-e", "1")


def measure_auditd(rate, seconds, rules, laurel, port=9):
    directory = os.path.join(OUT, f"{'laurel' if laurel else 'auditd'}-{rate}")
    shutil.rmtree(directory, ignore_errors=True)
    auditd = start_auditd(directory, laurel)
    try:
        load_rules(rules)
        if laurel:
            wait_for(lambda: sh("pgrep", "-P", str(auditd.pid), check=False).strip(), 5, "laurel starting")

        def watched():
            return [auditd.pid] + [int(p) for p in sh("pgrep", "-P", str(auditd.pid), check=False).split()]
        cpu, lost, line = run_load(rate, seconds, watched, port)
        rss = sum(peak_rss_mb(p) for p in watched())
        return cpu, lost, rss, line
    finally:
        remove_bench_rules(rules)
        auditd.send_signal(signal.SIGTERM)
        auditd.wait(10)
        sh("auditctl", "-e", "0", check=False)


def start_xferwatchd(directory, seconds_to_start=10, extra="", log_level="warning", user="root", audit=""):
    """Starts xferwatchd with everything on (the packet tap too) in a fresh `directory`, `extra`
    appended to its configuration and `audit` to its [audit] table, as `user`; returns it once
    its rules are in, with those rules re-keyed for auditd (same rules, our key left alone)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    if user != "root":
        import pwd
        account = pwd.getpwnam(user)
        os.chown(directory, account.pw_uid, account.pw_gid)
    conf = os.path.join(directory, "agent.conf")
    with open(conf, "w") as f:
        f.write(f"""[agent]
state_dir = "{directory}/state"
control_socket = "{directory}/agent.sock"
log_level = "{log_level}"
user = "{user}"
[audit]
source = "unicast"
{audit}
[rules.yara]
paths = ["{ROOT}/rules/yara/*.yar"]
[output.file]
path = "{directory}/alerts.jsonl"
""" + extra)
    err = open(os.path.join(directory, "stderr"), "w+")
    agent = subprocess.Popen([os.path.join(ROOT, ".build/release/xferwatchd"), "run", "--config", conf],
                             stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: audit_status().get("pid") == str(agent.pid) and "xferwatch" in sh("auditctl", "-l"), seconds_to_start,
                 "xferwatchd installing its rules")
    except BaseException:
        stop_xferwatchd(agent)
        raise
    rules = [rekeyed(line) for line in sh("auditctl", "-l").splitlines() if is_agents(line)]
    return agent, rules


def is_agents(rule):
    """Whether an `auditctl -l` line is the agent's: its key, or the mark on its exclusions
    (uid>=0, true of every process). The host's own rules are left out."""
    return " -F key=xferwatch " in rule + " " or (rule.startswith("-a always,exclude") and " -F uid>=0" in rule)


def rekeyed(rule):
    """An `auditctl -l` line of the agent's, to load without it, keyed xwbench (its exclude rule
    carries no key, and stays as it is)."""
    return rule.replace("-F key=xferwatch", "-F key=xwbench")


def stop_xferwatchd(agent):
    agent.send_signal(signal.SIGINT)
    agent.wait(60)


def measure_xferwatchd(rate, seconds, **options):
    agent, rules = start_xferwatchd(os.path.join(OUT, f"xferwatchd-{rate}"), **options)
    try:
        cpu, lost, line = run_load(rate, seconds, lambda: [agent.pid])
        return cpu, lost, peak_rss_mb(agent.pid), line, rules
    finally:
        stop_xferwatchd(agent)


def prepare(name, build=True):
    """Checks that the bench may take the audit socket, builds the load generator and (unless
    told not to: a test that built it already) the release build, as shipped."""
    if os.geteuid() != 0:
        raise SystemExit(f"{name}: run as root")
    status = audit_status()
    if status.get("pid", "0") != "0" and os.path.exists(f"/proc/{status['pid']}"):
        raise SystemExit(f"{name}: pid {status['pid']} holds the audit socket")
    os.makedirs(OUT, exist_ok=True)
    sh("gcc", "-O2", "-o", os.path.join(OUT, "loadgen"), os.path.join(ROOT, "bench/loadgen.c"))
    if build:
        sh("make", "-s", "-C", ROOT, "release")


def main():
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    rates = [int(r) for r in sys.argv[2:]] or [500, 1000, 2000]
    prepare("bench/live")

    print(f"{'rate':>6} {'watcher':<26} {'CPU s':>7} {'% core':>7} {'lost':>6} {'peak MB':>8}  load")
    for rate in rates:
        # xferwatchd first: the rules it installs are the ones auditd gets.
        cpu, lost, rss, line, rules = measure_xferwatchd(rate, seconds)
        rows = [("auditd alone (RAW log)", *measure_auditd(rate, seconds, rules, False)),
                ("auditd + laurel", *measure_auditd(rate, seconds, rules, True)),
                ("xferwatchd (everything on)", cpu, lost, rss, line)]
        for name, c, l, r, text in rows:
            achieved = re.search(r"\((\d+) exec/s\)", text)
            print(f"{rate:>6} {name:<26} {c:>7.2f} {100 * c / seconds:>6.1f}% {l:>6} {r:>8.1f}  {achieved.group(1) if achieved else '?'} exec/s")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
