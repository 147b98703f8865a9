/*
   LightFTP, a small FTP server that intruders drop as a staging or C2 endpoint.

   LightFTP_fftp_x86_64 keeps the name SIEM content keys on and the conditions of the
   published rule by Florian Roth (Nextron Systems), signature-base, 2015-05-14:
   a PE under 250 KB with four of its five strings. Credit for the detection is his.
   LightFTP_fftp_linux is xferwatch's own, for today's POSIX build of LightFTP.
*/

rule LightFTP_fftp_x86_64
{
    meta:
        description = "LightFTP server for Windows (fftp.exe)"
        author = "Florian Roth (Nextron Systems); ported by xferwatch"
        reference = "https://github.com/hfiref0x/LightFTP"
        date = "2015-05-14"
        hash1 = "989525f85abef05581ccab673e81df3f5d50be36"
        hash2 = "5884aeca33429830b39eba6d3ddb00680037faf4"
        score = 50

    strings:
        $config = "fftp.cfg" fullword wide
        $banner = "220 LightFTP server v1.0 ready" fullword ascii
        $thread_exit = "*FTP thread exit*" fullword wide
        $logon = "PASS->logon successful" fullword ascii
        $completed = "250 Requested file action okay, completed." fullword ascii

    condition:
        uint16(0) == 0x5a4d and filesize < 250KB and 4 of them
}

rule LightFTP_fftp_linux
{
    meta:
        description = "LightFTP server built for Linux (fftp)"
        author = "xferwatch"
        reference = "https://github.com/hfiref0x/LightFTP"
        date = "2026-11-22"
        score = 50

    strings:
        $banner = "220 LightFTP server ready" ascii
        $config = "fftp.conf" fullword ascii
        $section = "ftpconfig" fullword ascii
        $logon = "PASS->logon successful" ascii

    condition:
        uint32(0) == 0x464c457f and filesize < 4MB and $banner and 1 of ($config, $section, $logon)
}
