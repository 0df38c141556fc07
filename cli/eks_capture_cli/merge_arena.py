"""The fast merge's memory: one anonymous map holding the output area and a read slot per open input."""

from __future__ import annotations

import mmap

import numpy as np
import numpy.typing as npt

from eks_capture.pcap.reader import MAX_PACKET

#: Bytes read from an input at a time: 256 KiB measured fastest (1 MiB chunks were ~20 % slower, their
#: arrays no longer stay in cache; 64 KiB ones spend more on numpy calls than on packets).
CHUNK = 256 << 10
#: A slot holds a chunk plus the unfinished record carried over from the previous chunk.
SLOT = CHUNK + 16 + MAX_PACKET
#: The output area: blocks are laid out and written this much at a time (at least one largest block).
OUTPUT = 1 << 20
NO_RANK = -(1 << 62)  # a bound rank below every input's: packets at the bound time wait for the open
AREA_START = 8  # the output area's first glue begins two words before the first block
AREA_SLACK = AREA_START + 36  # and a batch's last glue runs past its end
#: A classic pcap record header as numpy sees it, and the glue of two blocks (see ``_Writer``).
RECORD = {
    order: np.dtype([(name, order + "u4") for name in ("sec", "frac", "caplen", "wirelen")]) for order in "<>"
}
GLUE = np.dtype("V36")

Array = npt.NDArray[np.int64]


class Arena:
    """One anonymous memory map (``mmap.move`` copies within one): the output area, a slot per open input."""

    def __init__(self, slots: int) -> None:
        self.map = mmap.mmap(-1, OUTPUT + slots * SLOT, flags=mmap.MAP_PRIVATE)
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

    def take(self) -> int:
        """The offset of a free slot, growing the map (twice as many slots) when none is left."""
        if not self._free:
            slots = (len(self.map) - OUTPUT) // SLOT
            self._unview()  # a map with exported buffers cannot be resized
            self.map.resize(OUTPUT + 2 * slots * SLOT)
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
        del self.bytes, self.records, self.glue
