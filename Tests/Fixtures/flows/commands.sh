#!/bin/bash
# The workload recorded in flows.log: real clients against Tests/support/transfer-lab
# (`transfer-lab up /tmp/xwlab` first). Each client's pid goes to manifest.txt as
# "NAME PID" (the client is exec'd by the shell that wrote its pid).
set -euo pipefail
lab=/tmp/xwlab
out=$(dirname "$0")
manifest=$out/manifest.txt
: > "$manifest"
work=$(mktemp -d)
head -c 300000 /dev/urandom > "$work/data.bin"
ssh_options="-i $lab/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
run() { # run NAME COMMAND...: records the pid, then becomes the client
    local name=$1; shift
    bash -c 'echo "$0 $$" >> "$1"; shift; exec "$@"' "$name" "$manifest" "$@"
}
printf 'user anonymous x\nbinary\nput %s upload/passive.bin\nquit\n' "$work/data.bin" > "$work/put.ftp"
run ftp-passive-put ftp -n -p 203.0.113.10 < "$work/put.ftp" > /dev/null
printf 'user anonymous x\nbinary\nget upload/passive.bin %s\nquit\n' "$work/get.bin" > "$work/get.ftp"
run ftp-active-get ftp -n -A 203.0.113.10 < "$work/get.ftp" > /dev/null
run curl-put curl -s -T "$work/data.bin" ftp://203.0.113.10/upload/curl.bin
run scp-put scp $ssh_options "$work/data.bin" root@203.0.113.10:$lab/sshroot/scp.bin
run scp-legacy-get scp -O $ssh_options root@203.0.113.10:$lab/sshroot/scp.bin "$work/scp-back.bin"
printf 'put %s %s\n' "$work/data.bin" "$lab/sshroot/sftp.bin" > "$work/batch.sftp"
run sftp-batch-put sftp $ssh_options -b "$work/batch.sftp" root@203.0.113.10 > /dev/null
run tftp-put tftp 203.0.113.10 -c put "$work/data.bin" fixture.bin
run busybox-tftp-get busybox tftp -g -l "$work/tftp-back.bin" -r fixture.bin 203.0.113.10 2> /dev/null
run curl-http curl -s -o /dev/null http://203.0.113.10:21/ || true
rm -rf "$work"
