#!/usr/bin/env python3
"""Tiny QMP client for the guest self-test.

usage: qmp.py SOCKET COMMAND [JSON_ARGS] [COMMAND [JSON_ARGS]]...
Runs each command in order, prints each `return` as one JSON line, skips events,
exits 1 on an `error` reply (printing it to stderr).
"""
import json
import socket
import sys


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(argv[1])
    f = sock.makefile("rw")

    def reply():
        while True:
            line = f.readline()
            if not line:
                raise EOFError("QMP socket closed")
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    reply()  # greeting
    f.write(json.dumps({"execute": "qmp_capabilities"}) + "\n")
    f.flush()
    reply()
    args = argv[2:]
    i = 0
    while i < len(args):
        cmd = {"execute": args[i]}
        if i + 1 < len(args) and args[i + 1].startswith("{"):
            cmd["arguments"] = json.loads(args[i + 1])
            i += 1
        i += 1
        f.write(json.dumps(cmd) + "\n")
        f.flush()
        r = reply()
        if "error" in r:
            print(json.dumps(r), file=sys.stderr)
            return 1
        print(json.dumps(r.get("return")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
