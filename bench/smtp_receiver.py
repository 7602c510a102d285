#!/usr/bin/env python3
"""smtp_receiver.py - a minimal SMTP receiver for bench/send_memory.sh.

Listens on 127.0.0.1 (a free port, printed on stdout as "port N"), accepts
one session, and writes the body of the first message to OUT with the
transparency undone (RFC 5321 4.5.2: a leading "." removed) and CRLF line
ends turned back into LF, so that OUT can be compared byte for byte with
the message that was sent. Loopback only; exits after the session or after
TIMEOUT seconds without traffic.
"""
import socket
import sys

TIMEOUT = 60


def main():
    out_path = sys.argv[1]
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(TIMEOUT)
    print("port %d" % srv.getsockname()[1], flush=True)
    conn, _ = srv.accept()
    conn.settimeout(TIMEOUT)
    rd = conn.makefile("rb", buffering=1 << 16)
    conn.sendall(b"220 receiver ESMTP\r\n")
    in_data = False
    with open(out_path, "wb") as out:
        for line in rd:
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    conn.sendall(b"250 2.0.0 stored\r\n")
                    continue
                if line.startswith(b"."):
                    line = line[1:]
                if line.endswith(b"\r\n"):
                    line = line[:-2] + b"\n"
                out.write(line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                in_data = True
                conn.sendall(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 bye\r\n")
                break
            elif verb == b"EHLO":
                conn.sendall(b"250-receiver\r\n250 SIZE\r\n")
            else:
                conn.sendall(b"250 ok\r\n")
    conn.close()


if __name__ == "__main__":
    main()
