#!/usr/bin/env python3
"""What the packet tap costs a bulk transfer: a 1 GiB FTP upload and a 1 GiB scp through the
lab's veth, and a 1 GiB FTP upload on loopback, each with xferwatchd running everything (the
packet tap on, then [inspection] enabled = false), beside tcpdump capturing with the very same
kernel filter into /dev/null. Prints the CPU seconds of xferwatchd and of tcpdump during each
transfer, and what the tap adds in % of a core per Gbit/s.
Usage (as root): bench/inspection.py [MIB]   default 1024 MiB per transfer."""
import os, shutil, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import live  # noqa: E402

ROOT = live.ROOT
OUT = os.path.join(ROOT, "bench/out/inspection")
LAB = os.path.join(OUT, "lab")


def filter_expression():
    """The tap's kernel filter, as xferwatchd compiles it."""
    return live.sh(os.path.join(ROOT, ".build/release/xferwatchd"), "check-config", "--print-capture-filter", "--config",
                   os.path.join(ROOT, "agent.conf")).strip()


def loopback_ftp():
    """vsftpd in this namespace on 127.0.0.1:2121, the lab's configuration otherwise."""
    conf = os.path.join(LAB, "vsftpd-loopback.conf")
    with open(os.path.join(LAB, "vsftpd.conf")) as f:
        text = f.read()
    dropped = ("listen_port=", "listen_address=", "pasv_min_port=", "pasv_max_port=", "connect_from_port_20=")
    text = "".join(line for line in text.splitlines(keepends=True) if not line.startswith(dropped))
    text += "listen_port=2121\nlisten_address=127.0.0.1\npasv_min_port=40400\npasv_max_port=40500\nconnect_from_port_20=NO\n"
    with open(conf, "w") as f:
        f.write(text)
    return subprocess.Popen(["/usr/sbin/vsftpd", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def transfers(mib):
    key = os.path.join(LAB, "client_key")
    ssh = ["-i", key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR"]
    source = f"head -c {mib}M /dev/zero"
    return [
        ("FTP upload, veth", f"{source} | curl -s -T - ftp://203.0.113.10/upload/bench.bin"),
        ("scp, veth", f"{source} > {OUT}/big.bin && scp {' '.join(ssh)} {OUT}/big.bin root@203.0.113.10:/dev/null"),
        ("FTP upload, loopback", f"{source} | curl -s -T - ftp://127.0.0.1:2121/upload/bench.bin"),
    ]


def measure(command, watched):
    before = [live.cpu_seconds(pid) for pid in watched]
    start = time.time()
    subprocess.run(["/bin/sh", "-c", command], check=True)
    elapsed = time.time() - start
    time.sleep(1.0)  # the destroy notification and the flow's report
    return elapsed, [live.cpu_seconds(pid) - b for pid, b in zip(watched, before)]


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    live.prepare("bench/inspection")
    os.makedirs(OUT, exist_ok=True)
    subprocess.run([os.path.join(ROOT, "Tests/support/transfer-lab"), "up", LAB], check=True, stdout=subprocess.DEVNULL)
    server = loopback_ftp()
    expression = filter_expression()
    results = []
    try:
        for name, command in transfers(mib):
            row = {"name": name}
            for mode, extra in [("on", ""), ("off", "[inspection]\nenabled = false\n")]:
                agent, _ = live.start_xferwatchd(os.path.join(OUT, f"agent-{mode}"), extra=extra)
                tcpdump = None
                if mode == "on":
                    tcpdump = subprocess.Popen(["tcpdump", "-i", "any", "-s", "256", "-w", "/dev/null", expression],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(1.0)
                try:
                    elapsed, cpu = measure(command, [agent.pid] + ([tcpdump.pid] if tcpdump else []))
                finally:
                    live.stop_xferwatchd(agent)
                    if tcpdump:
                        tcpdump.terminate()
                        tcpdump.wait(10)
                row[mode] = (elapsed, cpu[0])
                if tcpdump:
                    row["tcpdump"] = cpu[1]
            results.append(row)
            shutil.rmtree(os.path.join(LAB, "ftproot/upload/bench.bin"), ignore_errors=True)
    finally:
        server.terminate()
        subprocess.run([os.path.join(ROOT, "Tests/support/transfer-lab"), "down", LAB], stdout=subprocess.DEVNULL)
    gbits = mib * 1024 * 1024 * 8 / 1e9
    print(f"{mib} MiB per transfer ({gbits:.2f} Gbit); CPU seconds during the transfer")
    print(f"{'transfer':24} {'time s':>7} {'agent, tap on':>14} {'agent, tap off':>15} {'tcpdump':>8} {'tap adds, % core per Gbit/s':>29}")
    for row in results:
        (t_on, on), (_, off) = row["on"], row["off"]
        added = 100 * (on - off) / gbits
        print(f"{row['name']:24} {t_on:7.2f} {on:14.3f} {off:15.3f} {row['tcpdump']:8.3f} {added:29.3f}")


if __name__ == "__main__":
    main()
