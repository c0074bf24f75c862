#!/usr/bin/env python3
"""Replays the client commands of a redis-cli MONITOR capture, in order, on one connection.

Usage: redis-replay.py PORT CAPTURE. Commands the scripts ran (`[0 lua]`) are not sent (their
scripts run them again), nor the relay's outbox reads and deletes (the stream ids a replay makes
are new ones) or reads of the board. With LUA_FROM set, every script load is replaced by the
same composition of that directory's scripts (as src/store/mod.rs composes them), and every
EVALSHA names the replacement's digest: a script change measured on the very same batches.
"""
import hashlib
import os
import re
import socket
import sys

# As store/mod.rs composes the scripts: prepended libraries, then the script.
COMPOSED = [
    ["buckets", "names", "apply_batch"],
    ["buckets", "names", "claim_partition"],
    ["buckets", "names", "list_stages"],
    ["due_clocks"],
    ["read_changes"],
    ["names", "load_records"],
]
SKIPPED = {b"MONITOR", b"CONFIG", b"INFO", b"CLIENT", b"HELLO", b"XRANGE", b"XREVRANGE", b"XDEL", b"SHUTDOWN"}
ESCAPES = {"\\\\": b"\\", '\\"': b'"', "\\n": b"\n", "\\r": b"\r", "\\t": b"\t", "\\a": b"\a", "\\b": b"\b"}
TOKEN = re.compile(r"\\x[0-9a-f]{2}|\\.|[^\\]", re.S)
LINE = re.compile(r"^[\d.]+ \[\d+ ([^\]]*)\] (.*)$")
ARG = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)


def unrepr(s):
    """The bytes of one argument as MONITOR quotes it (sdscatrepr)."""
    out = bytearray()
    for t in TOKEN.findall(s):
        if t.startswith("\\x"):
            out.append(int(t[2:], 16))
        elif t.startswith("\\"):
            out += ESCAPES.get(t, t[1:].encode())
        else:
            out += t.encode("latin-1")
    return bytes(out)


def commands(path):
    with open(path, encoding="latin-1") as f:
        for line in f:
            m = LINE.match(line.rstrip("\n"))
            if not m or m.group(1) == "lua":
                continue
            args = [unrepr(a) for a in ARG.findall(m.group(2))]
            if args and args[0].upper() not in SKIPPED:
                yield args


def replacements(lua_dir):
    """Captured script body -> replacement, found by the first line of the script itself."""
    def read(name):
        with open(os.path.join(lua_dir, name + ".lua"), "rb") as f:
            return f.read()
    found = []
    for parts in COMPOSED:
        found.append((read(parts[-1]).split(b"\n", 1)[0], b"".join(read(p) for p in parts)))
    return found


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    swap = replacements(os.environ["LUA_FROM"]) if os.environ.get("LUA_FROM") else []
    digests = {}
    conn = socket.create_connection(("127.0.0.1", port))
    replies = conn.makefile("rb")

    def reply():
        line = replies.readline()
        kind = line[:1]
        if kind == b"$" and int(line[1:]) >= 0:
            replies.read(int(line[1:]) + 2)
        elif kind == b"*":
            for _ in range(max(int(line[1:]), 0)):
                reply()
        elif kind not in (b"+", b"-", b":", b"$"):
            raise RuntimeError(f"unexpected reply {line!r}")
        return line

    sent = errors = 0
    for args in commands(path):
        name = args[0].upper()
        if name == b"SCRIPT" and len(args) == 3:
            for first_line, body in swap:
                if first_line in args[2]:
                    digests[hashlib.sha1(args[2]).hexdigest().encode()] = hashlib.sha1(body).hexdigest().encode()
                    args[2] = body
                    break
        elif name in (b"EVALSHA", b"EVALSHA_RO") and args[1] in digests:
            args[1] = digests[args[1]]
        conn.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        r = reply()
        sent += 1
        # NOSCRIPT is the client's first try before it loads a script, as it was when captured.
        if r.startswith(b"-") and not r.startswith(b"-NOSCRIPT"):
            errors += 1
            if errors <= 5:
                print("error:", args[0].decode(), r.decode().strip()[:160], file=sys.stderr)
    print(f"replayed {sent} commands, {errors} errors (other than NOSCRIPT)")


if __name__ == "__main__":
    main()
