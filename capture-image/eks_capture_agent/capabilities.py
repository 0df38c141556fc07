"""The Linux capabilities a root capture container must hold, checked before tcpdump is started.

As root the agent runs ``tcpdump -Z root``: NET_RAW opens the capture socket and SETGID lets tcpdump
reset its groups. Without them tcpdump's own message ("Couldn't change to 'root' ...") does not say
which securityContext line is missing; this check does. A non-root agent relies on tcpdump's file
capabilities instead, which only tcpdump itself can report on.
"""

from __future__ import annotations

import re

REQUIRED_AS_ROOT = {"NET_RAW": 13, "SETGID": 6}
_EFFECTIVE = re.compile(r"^CapEff:\s*([0-9a-fA-F]+)$", re.MULTILINE)


def missing_capabilities(proc_status: str) -> list[str]:
    """Capabilities of ``REQUIRED_AS_ROOT`` absent from the effective set in a /proc/<pid>/status text."""
    match = _EFFECTIVE.search(proc_status)
    effective = int(match[1], 16) if match else 0
    return [name for name, bit in REQUIRED_AS_ROOT.items() if not effective >> bit & 1]
