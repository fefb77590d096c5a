#!/usr/bin/env python3
"""Receives a pty master over a --console-socket and copies what it reads to a file.

Usage: console-receiver.py SOCKET OUTPUT [TIMEOUT_SECONDS]
Listens on SOCKET, takes one connection and the fd it carries (SCM_RIGHTS, as runc's
recvtty), then copies the master's output to OUTPUT until the terminal hangs up (EIO,
the last slave fd closed) or TIMEOUT (default 120 s) passes. Exit 0 once a master came.
"""
import os, select, socket, sys, time

path, output = sys.argv[1], sys.argv[2]
deadline = time.time() + float(sys.argv[3] if len(sys.argv) > 3 else 120)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
server.listen(1)
server.settimeout(max(1, deadline - time.time()))
connection, _ = server.accept()
_, fds, _, _ = socket.recv_fds(connection, 1024, 1)
if not fds:
    sys.exit("console-receiver: no fd received")
master = fds[0]
with open(output, "wb") as out:
    while time.time() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if not ready:
            continue
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the container's side is gone
            break
        if not data:
            break
        out.write(data)
        out.flush()
