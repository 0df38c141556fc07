"""Link-layer header types (LINKTYPE_* of the tcpdump.org registry) that the analyzer decodes."""

from __future__ import annotations

ETHERNET = 1
RAW = 101
LINUX_SLL = 113
IPV4 = 228
IPV6 = 229
LINUX_SLL2 = 276
#: DLT_RAW as some platforms number it in files (12 on most, 14 on OpenBSD).
RAW_ALIASES = (12, 14)

NAMES: dict[int, str] = {
    ETHERNET: "ethernet",
    RAW: "raw",
    12: "raw",
    14: "raw",
    LINUX_SLL: "linux-sll",
    IPV4: "ipv4",
    IPV6: "ipv6",
    LINUX_SLL2: "linux-sll2",
}


def name_of(link_type: int) -> str:
    """A short stable name for JSON output; unknown types keep their number so nothing is hidden."""
    return NAMES.get(link_type, f"linktype-{link_type}")
