"""The merge of plain classic pcap and pcapng files, in C (``_merge_core.c``), for ``merge.merge_plain``."""

from collections.abc import Callable, Sequence

def merge(
    paths: Sequence[str],
    order: Sequence[int],
    first_ns: Sequence[int],
    interface: Callable[[int, int], int],
    names_once: Callable[[], None],
    blocks: bytearray,
    write: Callable[[bytearray], object],
    *,
    chunk: int = ...,
    flush: int = ...,
) -> tuple[int, dict[int, str]]:
    """Packets written, and why each input that ended early did, by index, in the order they were opened."""
