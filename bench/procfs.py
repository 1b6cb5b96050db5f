"""What /proc says about a process: memory, CPU time and TCP connections (psutil is not a dependency)."""

from __future__ import annotations

import os
from pathlib import Path

ESTABLISHED = "01"


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/PID/stat utime and stime)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _tcp(pid: int) -> list[tuple[int, int, str]]:
    """The process's TCP sockets: (local port, remote port, state)."""
    inodes = _socket_inodes(pid)
    out: list[tuple[int, int, str]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                local, remote = (int(a.rsplit(":", 1)[1], 16) for a in fields[1:3])
                out.append((local, remote, fields[3]))
    return out


def connections_to(pid: int, port: int) -> int:
    """Established TCP connections of process `pid` to `port`."""
    return sum(1 for _, remote, state in _tcp(pid) if remote == port and state == ESTABLISHED)


def local_ports(pid: int) -> set[int]:
    """The local ports of the process's TCP sockets (to tell its own Redis clients from others')."""
    return {local for local, _, _ in _tcp(pid)}
