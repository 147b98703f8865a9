#!/usr/bin/python3
"""Prints every event of an audit log as auparse (libauparse, Debian's python3-audit) reads it:
one JSON line per event with its time, serial and records, each record's fields decoded the way
auparse interprets escaped (hex or quoted) values and raw otherwise. The differential test
compares xferwatch's own decoding against this."""
import json
import sys

import auparse

def main(path):
    au = auparse.AuParser(auparse.AUSOURCE_FILE, path)
    au.set_escape_mode(auparse.AUPARSE_ESC_RAW)
    escaped = {auparse.AUPARSE_TYPE_ESCAPED, auparse.AUPARSE_TYPE_ESCAPED_KEY,
               getattr(auparse, "AUPARSE_TYPE_PROCTITLE", -1)}
    while au.parse_next_event():
        stamp = au.get_timestamp()
        event = {"time": "%d.%03d" % (stamp.sec, stamp.milli), "serial": stamp.serial, "records": []}
        au.first_record()
        while True:
            record = {"type": au.get_type_name(), "fields": []}
            au.first_field()
            while True:
                name = au.get_field_name()
                raw = au.get_field_str()
                if au.get_field_type() in escaped:
                    value = au.interpret_field()
                elif len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "\"'":
                    value = raw[1:-1]
                else:
                    value = raw
                record["fields"].append([name, value])
                if not au.next_field():
                    break
            event["records"].append(record)
            if not au.next_record():
                break
        print(json.dumps(event))

if __name__ == "__main__":
    main(sys.argv[1])
