#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora into DIR/<target>/: audit records cut from the
recorded fixtures, agent.conf, control request lines, RELP answers rsyslog's imrelp gave, /proc lines and an ELF note, captured packets of every protocol the
tap reads (Linux cooked headers, IPv4 and IPv6), and the values of recorded alerts for the syslog
message builder. Usage: fuzz/seeds.py DIR"""
import os, struct, sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = sys.argv[1]


def write(target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


# Records: pieces of the kernel-recorded logs, a few events each.
for log in ["raw.log", "enriched.log", "flows/flows.log", "detection/detection.log"]:
    lines = open(os.path.join(root, "Tests/Fixtures", log), "rb").read().split(b"\n")
    for i in range(0, min(len(lines), 400), 40):
        write("records", f"{log.replace('/', '-')}-{i}", b"\n".join(lines[i:i + 40]))

write("toml", "agent.conf", open(os.path.join(root, "agent.conf"), "rb").read())
write("toml", "exclusions", b'[[exclusions]]\nname = "x"\nuser = ["root"]\ndestination_ports = [21, 0x15]\n'
      b"[detection]\nfilename_patterns = ['''(?i)\\.zip$''']\nhold_execve_alerts_ms = 5_000\n")

for i, line in enumerate([b'{"protocol":1,"command":"status"}', b'{"protocol":1,"command":"alerts","last":5,"follow":true}',
                          b'{"protocol":1,"command":"reload"}', b'{"protocol":1,"ok":false,"failure":"denied","error":"x"}']):
    write("control", f"request-{i}", line)

# /proc: this process's stat line, cgroup paths of each runtime, fd links, /bin/true's build-id note.
write("proc", "stat", b"\x00" + open("/proc/self/stat", "rb").read())
write("proc", "stat-hostile", b"\x00" + b"4242 (a) b) (c d) S 1 4242 4242 0 -1 4194560 93 0 0 0 0 0 0 0 20 0 1 0 7000 1 1")
for i, cgroup in enumerate([b"0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
                            b"0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b3c4d_5e6f_7a8b_9c0d_1e2f3a4b5c6d.slice/"
                            b"cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
                            b"0::/machine.slice/machine-web\\x2d1.scope", b"0::/user.slice/user-0.slice/session-3.scope"]):
    write("proc", f"cgroup-{i}", b"\x01" + cgroup + b"\n")
write("proc", "fd-socket", b"\x02socket:[123456]")
write("proc", "fd-pipe", b"\x02pipe:[99]")
try:
    import subprocess, tempfile
    with tempfile.NamedTemporaryFile() as note:
        subprocess.run(["objcopy", "-O", "binary", "--only-section=.note.gnu.build-id", "/bin/true", note.name], check=True)
        write("proc", "build-id", b"\x03" + open(note.name, "rb").read())
except (OSError, subprocess.CalledProcessError):
    pass

# RELP: answers imrelp (librelp 1.11) gave to open, two syslog commands and close; a refusal.
write("relp", "session", b"\x20" + b"1 rsp 93 200 OK\nrelp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\n"
      b"commands=syslog\n2 rsp 6 200 OK\n3 rsp 6 200 OK\n4 rsp 0\n0 serverclose 0\n")
write("relp", "refused", b"\x05" + b"2 rsp 21 500 queue full, sorry\n")


def checksum_free_tcp(payload, dport=21, sport=40000, ipv6=False):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 7, 0, 0x50, 0x18, 65535, 0, 0)
    return network(6, tcp + payload, ipv6)


def udp(payload, dport=69, ipv6=False):
    return network(17, struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload, ipv6)


def network(proto, transport, ipv6):
    if ipv6:
        header = struct.pack("!IHBB", 0x60000000, len(transport), proto, 64) + bytes(15) + b"\x01" + bytes(15) + b"\x10"
        return struct.pack("!HHHQH", 0, 1, 6, 0, 0x86DD) + header + transport
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(transport), 0, 0x4000, 64, proto, 0, bytes([10, 203, 0, 1]),
                         bytes([203, 0, 113, 10]))
    return struct.pack("!HHHQH", 0, 1, 6, 0, 0x0800) + header + transport


payloads = [b"USER anonymous\r\n", b"PASS secret\r\n", b"STOR upload/x.tar\r\n", b"220 (vsFTPd 3.0.3)\r\n",
            b"227 Entering Passive Mode (203,0,113,10,156,71).\r\n", b"229 Entering Extended Passive Mode (|||40011|)\r\n",
            b"EPRT |2|2001:db8::1|50001|\r\n", b"PORT 10,203,0,1,195,80\r\n", b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n",
            b"\x00\x00\x00\x45\xfeSMB@\x00", b"\x16\x03\x01\x02\x00\x01", b"GET / HTTP/1.1\r\nHost: x\r\n"]
for i, payload in enumerate(payloads):
    write("packets", f"tcp4-{i}", checksum_free_tcp(payload))
    write("packets", f"tcp6-{i}", checksum_free_tcp(payload, ipv6=True))
write("packets", "tftp-wrq", udp(b"\x00\x02report.tar\x00octet\x00"))
write("packets", "tftp-rrq6", udp(b"\x00\x01f\x00netascii\x00", ipv6=True))

# Syslog: the arguments of recorded alerts (format and bound bytes, host, rule, event, values).
import json
for log in ["detection", "enriched", "flows", "raw"]:
    for i, line in enumerate(open(os.path.join(root, f"Tests/Fixtures/golden/{log}.alerts.jsonl"), "rb").read().splitlines()[:6]):
        alert = json.loads(line)
        args = [a.encode("utf-8", "surrogateescape") for a in alert.get("process", {}).get("args", [])]
        fields = [b"host.example.com", alert["rule"]["id"].encode(), alert["event"]["id"].encode()] + args
        write("syslog", f"{log}-{i}", bytes([i % 2, 40 + 37 * i % 200]) + b"\x00".join(fields))
write("syslog", "hostile", b"\x00\x02" + b"\x00".join([b"h o\ns]t", b'r"]\\', b"e\x1b", b"\xff\xfe" * 300, b"a|b=c\n" * 90]))
