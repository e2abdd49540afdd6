"""This host's name, as the run log records it.

One function, so every run records it alike, and so `PLUGGEDIN_HOSTNAME` can name the
host where the kernel's name says nothing useful (containers that share one name) or where
tests play several hosts on one machine."""

from __future__ import annotations

import os
import socket

HOSTNAME_VARIABLE = "PLUGGEDIN_HOSTNAME"


def host_name() -> str:
    """`PLUGGEDIN_HOSTNAME` when set, else the kernel's host name (at most 255 chars)."""
    return (os.environ.get(HOSTNAME_VARIABLE) or socket.gethostname())[:255]
