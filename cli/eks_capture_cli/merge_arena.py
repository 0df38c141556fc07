"""The fast merge's memory: one anonymous map holding the output area and a read slot per open input."""

from __future__ import annotations

import mmap

import numpy as np
import numpy.typing as npt

from eks_capture.pcap.reader import MAX_PACKET
from eks_capture_cli.pcapng import MergeInput

#: Bytes read from an input at a time. Merging the bench's four 35 MB pcap files to /dev/null, best CPU
#: seconds of 3 (interleaved / rotated / pcapng quarters): 128 KiB 0.33/0.28/0.30, 256 KiB 0.29/0.25/0.27,
#: 512 KiB 0.24-0.26/0.22-0.23/0.26, 1 MiB 0.28/0.23/0.26, 2 MiB 0.29/0.24/0.30 (smaller chunks spend
#: more on numpy calls than on packets; larger ones no longer stay in cache).
CHUNK = 512 << 10
#: A slot holds a chunk plus the unfinished record carried over from the previous chunk.
SLOT = CHUNK + 16 + MAX_PACKET
#: The output area: blocks are laid out and written this much at a time (at least one largest block).
OUTPUT = 1 << 20
NO_RANK = -(1 << 62)  # a bound rank below every input's: packets at the bound time wait for the open
AREA_START = 8  # the output area's first glue begins two words before the first block
AREA_SLACK = AREA_START + 36  # and a batch's last glue runs past its end
#: Past the last slot: a packet's bytes are copied in whole words, up to 3 bytes beyond its end.
TAIL = 4
#: A classic pcap record header as numpy sees it, and the glue of two blocks (see ``_Writer``).
RECORD = {
    order: np.dtype([(name, order + "u4") for name in ("sec", "frac", "caplen", "wirelen")]) for order in "<>"
}
GLUE = np.dtype("V36")
#: A pcapng enhanced packet block's header as numpy sees it.
BLOCK = {
    order: np.dtype(
        [(name, order + "u4") for name in ("type", "length", "iface", "high", "low", "caplen", "wirelen")]
    )
    for order in "<>"
}

Array = npt.NDArray[np.int64]


class Arena:
    """One anonymous memory map (``mmap.move`` copies within one): the output area, a slot per open input."""

    def __init__(self, slots: int) -> None:
        self.map = mmap.mmap(-1, OUTPUT + slots * SLOT + TAIL, flags=mmap.MAP_PRIVATE)
        self._free = [OUTPUT + i * SLOT for i in range(slots)]
        self._view()

    def _view(self) -> None:
        """Views of the map: its bytes, a record header at every offset, glue at every output area word."""
        size = len(self.map)
        self.bytes = np.frombuffer(self.map, np.uint8)
        self.records = {
            order: np.ndarray((size - 15,), dtype, self.map, 0, (1,)) for order, dtype in RECORD.items()
        }
        self.glue = np.ndarray(((OUTPUT - GLUE.itemsize) // 4,), GLUE, self.map, 0, (4,))
        self.words = {order: np.ndarray((size // 4,), order + "u4", self.map) for order in "<>"}
        self.blocks = {
            order: np.ndarray((size - 27,), dtype, self.map, 0, (1,)) for order, dtype in BLOCK.items()
        }
        self._spans: dict[int, npt.NDArray[np.void]] = {}

    def spans(self, width: int) -> npt.NDArray[np.void]:
        """The map as ``width``-byte items at every offset: one fancy index copies many spans that long."""
        found = self._spans.get(width)
        if found is None:
            found = self._spans[width] = np.ndarray(
                (len(self.map) - width + 1,), f"V{width}", self.map, 0, (1,)
            )
        return found

    def take(self) -> int:
        """The offset of a free slot, growing the map (twice as many slots) when none is left."""
        if not self._free:
            slots = (len(self.map) - OUTPUT) // SLOT
            self._unview()  # a map with exported buffers cannot be resized
            self.map.resize(OUTPUT + 2 * slots * SLOT + TAIL)
            self._view()
            self._free = [OUTPUT + (slots + i) * SLOT for i in range(slots)]
        return self._free.pop()

    def give(self, slot: int) -> None:
        """Return a slot for the next input to use."""
        self._free.append(slot)

    def close(self) -> None:
        """Unmap (the numpy views go first)."""
        self._unview()
        self.map.close()

    def _unview(self) -> None:
        del self.bytes, self.records, self.glue, self.words, self.blocks, self._spans


class SlotInput:
    """One open input of the fast merge: its file, its slot, and the records of the chunk decoded there.

    A subclass reads its format: ``read`` fills the slot and sets ``data`` (offsets of packet bytes in
    the map), ``caplen``, ``wirelen``, ``ts``, ``interfaces`` (output interface ids) and, through
    ``_decoded``, ``keys``.
    """

    def __init__(self, index: int, merge_input: MergeInput, arena: Arena, chunk: int) -> None:
        self.index = index
        self.input = merge_input
        self.reason: str | None = None
        self.eof = False
        self._arena = arena
        self._stream = merge_input.path.open("rb", buffering=0)
        self._slot = arena.take()
        self._chunk = chunk
        self._filled = 0
        self._next = 0  # where in the slot the first record not yet decoded starts
        self._top = merge_input.first_ns  # the latest time seen so far: the next key's floor
        self.done = 0
        self.data: Array = np.empty(0, np.int64)
        self.caplen: Array = self.data
        self.wirelen: Array = self.data
        self.ts: Array = self.data
        self.interfaces: Array = self.data
        self.keys: Array = self.data

    def read(self) -> None:
        """Read the next chunk and decode its records (the format's subclass does)."""
        raise NotImplementedError

    @property
    def buffered(self) -> bool:
        """Whether decoded records are left to write."""
        return self.done < len(self.keys)

    @property
    def finished(self) -> bool:
        """Whether every record was written and nothing is left to read."""
        return self.eof and not self.buffered

    @property
    def next_key(self) -> int:
        """The key of the next record to write."""
        return int(self.keys[self.done])

    def take(self, bound: tuple[int, int] | None) -> tuple[SlotInput, int, int]:
        """The run of records up to ``bound`` (key, rank; None: all), marked as written."""
        start, stop = self.done, len(self.keys)
        if bound is not None:
            key, rank = bound
            stop = int(np.searchsorted(self.keys, key, "right" if -self.index <= rank else "left"))
        self.done = max(stop, start)
        return self, start, self.done

    def _fill(self, target: int) -> None:
        with memoryview(self._arena.map) as whole:
            while self._filled < target:
                with whole[self._slot + self._filled : self._slot + target] as free:
                    got = self._stream.readinto(free)
                if not got:
                    self.eof = True
                    return
                self._filled += got

    def _decoded(self) -> None:
        """Key the records just decoded: the latest time seen so far in the file (see ``merge_pcap``)."""
        keys = self.ts.copy()
        if len(keys):
            keys[0] = max(int(keys[0]), self._top)
            np.maximum.accumulate(keys, out=keys)
            self._top = int(keys[-1])
        self.keys = keys
        self.done = 0

    def _stop(self, reason: str) -> None:
        self.reason = reason
        self.eof = True

    def close(self) -> None:
        """Close the file and give the slot back (once)."""
        if not self._stream.closed:
            self._stream.close()
            self._arena.give(self._slot)
