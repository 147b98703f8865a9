#!/bin/bash
# The commands recorded in the fixtures: execve with plain, hex-encoded and split arguments,
# connects of each address family (loopback connects return EINPROGRESS for curl), UDP sendto.
set -u
py=/usr/bin/python3
$py -m http.server 18080 --bind 127.0.0.1 >/dev/null 2>&1 & server=$!
sleep 1
/bin/true
/bin/echo "hello world" 'quote"d' 'non-ascii é' >/dev/null
/bin/echo "$(head -c 9000 /dev/zero | tr '\0' 'A')" >/dev/null
curl -s -o /dev/null http://127.0.0.1:18080/ || true
curl -s -o /dev/null "http://[::1]:18081/" || true
$py -c 'import socket; s=socket.socket(socket.AF_UNIX); s.connect("/nonexistent")' 2>/dev/null || true
$py -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b"\0\1f\0octet\0", ("127.0.0.1", 69))'
$py -c 'import socket; s=socket.socket(socket.AF_INET6, socket.SOCK_DGRAM); s.sendto(b"x", ("::1", 69))'
/bin/ls "/tmp/dir with space" 2>/dev/null || true
kill $server
