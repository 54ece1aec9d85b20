#!/usr/bin/env python3
"""Opens COUNT connections to 127.0.0.1:PORT and holds them until killed, for benches/load.sh.

With SEND=1 each connection first sends one request and reads the whole response (the body ends
in "hello\n"), so the proxy holds a served keep-alive connection rather than one that never spoke.
With SEND=partial each sends the start of a request head and never finishes it, as a slow client
(or a slowloris) does: the proxy holds a connection waiting for the rest of a head.
Prints "ready N" once every connection is established (and answered, or its bytes sent).
usage: idle_clients.py PORT COUNT SEND
"""
import signal
import socket
import sys

port, count, send = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]
if send == "partial":
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nX-A: ")
elif send == "1":
    for s in socks:
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
    for s in socks:
        data = b""
        while not data.endswith(b"hello\n"):
            chunk = s.recv(4096)
            if not chunk:
                sys.exit("connection closed before the response")
            data += chunk
print("ready", len(socks), flush=True)
signal.pause()
