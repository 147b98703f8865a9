#!/usr/bin/env python3
"""Load test: xferwatchd as the package runs it (_xferwatch, everything on, the packet tap
too) under EXEC_RATE execve/s with a loopback connect every CONNECT_EVERY-th exec
(bench/loadgen.c) for SECONDS. Every 5 s it samples the agent's RSS, the kernel's lost counter
and backlog, and the agent's own state (agentctl status --json: flows open, alerts held for a
child's execve, YARA scans queued so far, userspace drops). Halfway through, a
scripted FTP upload (a shell script driving tnftp against the transfer lab's vsftpd at
203.0.113.10) must be attributed to its process and alerted, its data connection part of its
session, and curl run from memfd_create must be attributed and raise
transfer.no_file_executable. Then, with --burst, a load beyond
capacity: the agent is stopped (SIGSTOP) for 2 s of a 4 s load under a small backlog (256), so
the kernel's lost records must be counted and raised as agent.health, loadgen must not be held
up (backlog_wait_time is 0), and the agent must still run. loadgen makes its children with vfork
here: with fork a 2-core machine does not reach 2,000 exec/s beside the watcher.

Prints the samples and a verdict per target; exits 1 if one is missed:
  kernel lost 0 during the steady load; RSS after warm-up (the first fifth) grows by under 8 MB;
  the agent's userspace drops stay 0; the transfer is attributed and alerted, no alert on its
  data connection alone; the memfd upload alerted as having no file; (--burst) lost
  records counted and reported, loadgen's rate not held up, the agent alive.

Usage (as root): bench/load.py [SECONDS] [EXEC_RATE] [CONNECT_EVERY] [--burst] [--no-build]
                 default 600 s at 2,000 exec/s, a connect every 4th (500 connects/s)."""
import json, os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from live import OUT as LIVE_OUT, ROOT, audit_status, prepare, sh, start_xferwatchd, stop_xferwatchd  # noqa: E402

OUT = os.path.join(os.path.dirname(LIVE_OUT), "load")
LAB = os.path.join(ROOT, "Tests/support/transfer-lab")


def start_agent(directory, audit=""):
    """xferwatchd as the package runs it, syslog off (nothing to deliver to)."""
    agent, _ = start_xferwatchd(directory, seconds_to_start=30, extra="[output.syslog]\nenabled = false\n", user="_xferwatch",
                                audit=audit)
    return agent


def status(directory):
    text = sh(os.path.join(ROOT, ".build/release/agentctl"), "status", "--json", "--socket", f"{directory}/agent.sock", check=False)
    return json.loads(text) if text.strip() else {}


def rss_mb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def alerts(directory):
    path = os.path.join(directory, "alerts.jsonl")
    return [json.loads(line) for line in open(path)] if os.path.exists(path) else []


def scripted_upload(work):
    """A non-interactive shell script uploading a file with tnftp; returns the script's pid."""
    data = os.path.join(work, "load.tar")
    with open(data, "wb") as f:
        f.write(os.urandom(300_000))
    commands = os.path.join(work, "load.ftp")
    with open(commands, "w") as f:
        f.write(f"user anonymous x\nbinary\nput {data} upload/load-{os.getpid()}.tar\nquit\n")
    script = os.path.join(work, "load.sh")
    with open(script, "w") as f:
        f.write(f"#!/bin/sh\nftp -n -p 203.0.113.10 < {commands} > /dev/null\n")
    os.chmod(script, 0o755)
    child = subprocess.Popen([script])
    child.wait(60)
    return child.pid


def fileless_upload(work):
    """curl run from memfd_create (as fileless malware runs) uploading a file; returns its pid."""
    data = os.path.join(work, "memfd.bin")
    with open(data, "wb") as f:
        f.write(os.urandom(200_000))
    loader = os.path.join(work, "loader.py")
    with open(loader, "w") as f:
        f.write("import os, sys\nfd = os.memfd_create('kworker', 0)\nos.write(fd, open('/usr/bin/curl', 'rb').read())\n"
                "os.execv(f'/proc/self/fd/{fd}', ['curl', '-s', '-T', sys.argv[1], 'ftp://203.0.113.10/upload/memfd.bin'])\n")
    child = subprocess.Popen(["/usr/bin/python3", loader, data])
    child.wait(60)
    return child.pid


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    burst = "--burst" in sys.argv
    seconds = int(args[0]) if args else 600
    rate = int(args[1]) if len(args) > 1 else 2000
    every = int(args[2]) if len(args) > 2 else 4
    prepare("bench/load", build="--no-build" not in sys.argv)
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp(prefix="xferwatch-load-")
    os.chmod(work, 0o755)
    lab = os.path.join(work, "lab")
    subprocess.run([LAB, "up", lab], check=True, capture_output=True)
    misses = []
    try:
        directory = os.path.join(OUT, "agent")
        agent = start_agent(directory)
        time.sleep(1)
        lost_before = int(audit_status()["lost"])
        load = subprocess.Popen([os.path.join(LIVE_OUT, "loadgen"), str(rate), str(seconds), str(every), "9", "vfork"],
                                stdout=subprocess.PIPE, text=True)
        started = time.time()
        samples, upload_pid, fileless_pid = [], None, None
        print(f"{'t s':>5} {'RSS MB':>7} {'lost':>6} {'backlog':>8} {'flows':>6} {'held':>5} {'scans':>6} {'drops':>6}")
        while load.poll() is None:
            time.sleep(5 if seconds >= 30 else 2)
            now = time.time() - started
            s, kernel = status(directory), audit_status()
            drops = sum((s.get("audit", {}).get("userspace_drops") or {}).values())
            sample = (now, rss_mb(agent.pid), int(kernel["lost"]) - lost_before, int(kernel.get("backlog", 0)),
                      s.get("host", {}).get("flows_active", 0), s.get("detection", {}).get("held_alerts", 0),
                      s.get("yara", {}).get("queued", 0), drops)
            samples.append(sample)
            print(f"{sample[0]:5.0f} {sample[1]:7.1f} {sample[2]:6d} {sample[3]:8d} {sample[4]:6d} {sample[5]:5d} {sample[6]:6d} {sample[7]:6d}", flush=True)
            if upload_pid is None and now >= seconds / 2:
                upload_pid = scripted_upload(work)
                fileless_pid = fileless_upload(work)
        achieved = load.stdout.read().strip()
        time.sleep(2)
        lost = int(audit_status()["lost"]) - lost_before
        warm = [s[1] for s in samples[len(samples) // 5:]] or [0]
        growth = max(warm) - warm[0]
        drops = samples[-1][7] if samples else 0
        raised = [a for a in alerts(directory) if a.get("process", {}).get("pid") == upload_pid or
                  a.get("process", {}).get("parent", {}).get("pid") == upload_pid]
        print(f"load: {achieved} in {seconds} s")
        print(f"kernel lost during the load: {lost}" + ("" if lost == 0 else "  <- MISSED"))
        print(f"RSS after warm-up: {warm[0]:.1f} -> {max(warm):.1f} MB (+{growth:.1f})" + ("" if growth < 8 else "  <- MISSED"))
        print(f"userspace drops: {drops}" + ("" if drops == 0 else "  <- MISSED"))
        rules = sorted({a["rule"]["id"] for a in raised})
        # The passive data connection belongs to the FTP session on port 21: alone, it would be a
        # flow on a port that is not FTP's (the session closed before its connect was read).
        stray = sorted({a["rule"]["id"] for a in raised if a.get("destination", {}).get("port") not in (None, 21)})
        print(f"scripted upload (pid {upload_pid}): alerts {rules}" + ("" if raised else "  <- MISSED"))
        # A binary with no file, attributed under the storm as at rest.
        fileless = sorted({a["rule"]["id"] for a in alerts(directory) if a.get("process", {}).get("pid") == fileless_pid})
        attributed = "transfer.no_file_executable" in fileless
        print(f"memfd upload (pid {fileless_pid}): alerts {fileless}" + ("" if attributed else "  <- MISSED"))
        misses += ["fileless"] * (not attributed)
        if stray:
            print(f"  its data connection alerted as a flow of its own: {stray}  <- MISSED")
        misses += ["lost"] * (lost != 0) + ["rss"] * (growth >= 8) + ["drops"] * (drops != 0) + ["transfer"] * (not raised)
        misses += ["data-connection"] * bool(stray)
        stop_xferwatchd(agent)

        if burst:
            # Beyond capacity: the agent stopped (SIGSTOP) for 2 s of a 4 s load, with a backlog
            # of 256 records and the smallest receive buffer (64 KiB: a few hundred records; the
            # default 8 MiB holds the 2 s of a slow machine's load), so the kernel must drop and
            # count; audited processes must not wait.
            directory = os.path.join(OUT, "burst")
            agent = start_agent(directory, audit="receive_buffer_bytes = 65536")
            sh("auditctl", "-b", "256")
            time.sleep(1)
            lost_before = int(audit_status()["lost"])
            began = time.time()
            load = subprocess.Popen([os.path.join(LIVE_OUT, "loadgen"), str(rate), "4", str(every), "9", "vfork"],
                                    stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            agent.send_signal(signal.SIGSTOP)
            time.sleep(2)
            agent.send_signal(signal.SIGCONT)
            line = load.communicate()[0].strip()
            took = time.time() - began
            time.sleep(3)
            lost = int(audit_status()["lost"]) - lost_before
            health = [r for a in alerts(directory) if a["rule"]["id"] == "agent.health" for r in a["xferwatch"]["reasons"]]
            reported = any(r.startswith("the kernel lost") for r in health)
            alive = agent.poll() is None
            print(f"burst: {line} in {took:.1f} s (asked for 4 s, the agent stopped for 2 s), kernel lost {lost}, "
                  f"agent.health: {health[:1]}, agent running: {alive}")
            misses += ["burst-counted"] * (lost == 0 or not reported) + ["burst-stalled"] * (took > 5.5) + ["burst-crash"] * (not alive)
            if alive:
                stop_xferwatchd(agent)
    finally:
        subprocess.run([LAB, "down", lab], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    print("all targets met" if not misses else f"missed: {', '.join(misses)}")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
