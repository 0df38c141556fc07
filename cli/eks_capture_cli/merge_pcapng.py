"""The fast merge's pcapng input: enhanced packet blocks found and decoded a chunk at a time.

Blocks are 4-byte aligned, so a chunk is a run of 32-bit words: the enhanced packet blocks are the
words equal to 6 whose lengths lead from one to the next, from the chunk's start to where no further
block header fits (a 6 in packet bytes breaks that chain; see ``_chain``). Such a chunk is decoded by
numpy at once. Any other chunk (the first, with the section and interface blocks; one with statistics,
name or simple packet blocks; a damaged one; interfaces whose times overflow 64 bits in numpy) is walked
block by block in Python, with ``CaptureReader``'s checks and its reasons for stopping early, up to the
first enhanced packet block after the others (the rest may be decoded at once); so is what follows the
last whole enhanced packet block of a file.
"""

from __future__ import annotations

import struct

import numpy as np

from eks_capture.pcap.reader import (
    BLOCK_EPB,
    BLOCK_IDB,
    BLOCK_PB,
    BLOCK_SPB,
    MAX_BLOCK,
    PCAPNG_BOM,
    PCAPNG_SHB,
    Interface,
    interface_of,
)
from eks_capture_cli.merge_arena import SLOT, Arena, Array, SlotInput
from eks_capture_cli.pcapng import MergeInput, PcapngOutput

_INT64 = (1 << 63) - 1


class PcapngFile(SlotInput):
    """One open plain pcapng input."""

    def __init__(
        self, index: int, merge_input: MergeInput, arena: Arena, output: PcapngOutput, chunk: int
    ) -> None:
        super().__init__(index, merge_input, arena, chunk)
        self._output = output
        self._order = "<"
        self._interfaces: list[Interface] = []
        self._ids: list[int] = []  # the output interface of each of the section's interfaces
        self._last_ts = 0  # a simple packet block has no time: it takes the last one's
        self.read()

    def read(self) -> None:
        """Read on (after the unfinished block carried over) until packets are decoded or the file ends."""
        arena, slot = self._arena, self._slot
        while True:
            carried = self._filled - self._next
            if carried and self._next:
                arena.map.move(slot, slot + self._next, carried)
            self._filled, self._next = carried, 0
            self._fill(min(carried + self._chunk, SLOT))
            self._decode(slot, slot + self._filled)
            if self.buffered or self.eof:
                return

    def _decode(self, start: int, end: int) -> None:
        heads = self._chain(start, end)
        if heads is None or not self._vectorized(start, heads):
            self._walk(start, end)
        elif self.eof and self._slot + self._next < end:  # the walk says how the file ends
            decoded = (self.data, self.caplen, self.wirelen, self.ts, self.interfaces)
            self._walk(self._slot + self._next, end)
            walked = (self.data, self.caplen, self.wirelen, self.ts, self.interfaces)
            self.data, self.caplen, self.wirelen, self.ts, self.interfaces = (
                np.concatenate(pair) for pair in zip(decoded, walked, strict=True)
            )
        self._decoded()

    def _chain(self, start: int, end: int) -> Array | None:
        """Word offsets (from ``start``) of the chunk's blocks if all are enhanced packet blocks, else None.

        The last block may run past ``end`` (it is carried over to the next chunk).
        """
        words = self._arena.words[self._order][start // 4 : end // 4]
        found = np.flatnonzero(words == BLOCK_EPB)
        if not len(found) or found[0] != 0:
            return None
        lengths = words[np.minimum(found + 1, len(words) - 1)].astype(np.int64)
        lengths[found + 1 >= len(words)] = SLOT  # a header cut by the chunk's end: a block not whole yet
        following = found + lengths // 4
        place = np.searchsorted(found, following)
        leads = place < len(found)
        led = np.zeros(len(found), bool)
        led[place[leads][found[place[leads]] == following[leads]]] = True
        led[0] = True
        heads, following = found[led], following[led]
        if not (following[-1] > len(words) - 3 and np.array_equal(following[:-1], heads[1:])):
            return None
        if following[-1] * 4 > end - start:  # the last block is not whole yet
            heads = heads[:-1]
        return heads if len(heads) else None

    def _vectorized(self, start: int, heads: Array) -> bool:
        """Decode the enhanced packet blocks at ``heads`` at once; False (nothing decoded) when a block
        is damaged or a time would overflow, so the walk finds the reason or does the arithmetic."""
        blocks = self._arena.blocks[self._order][start + heads * 4]
        length = blocks["length"].astype(np.int64)
        caplen = blocks["caplen"].astype(np.int64)
        iface = blocks["iface"].astype(np.int64)
        interfaces = self._interfaces
        if not interfaces or ((length < 32) | (length % 4 != 0) | (length > MAX_BLOCK)).any():
            return False
        if ((caplen > length - 32) | (iface >= len(interfaces))).any():
            return False
        if any(i.div != 1 for i in interfaces):
            return False
        raw = (blocks["high"].astype(np.int64) << 32) | blocks["low"].astype(np.int64)
        mult = np.array([i.mult for i in interfaces], np.int64)
        offset = np.array([i.offset_ns for i in interfaces], np.int64)
        if int(raw.max()) > _INT64 // int(mult.max()) - int(np.abs(offset).max()):
            return False
        self.ts = raw * mult[iface] + offset[iface]
        self.data = start + heads * 4 + 28
        self.caplen = caplen
        self.wirelen = blocks["wirelen"].astype(np.int64)
        self.interfaces = np.array(self._ids, np.int64)[iface]
        self._next = int(start + heads[-1] * 4 + length[-1]) - self._slot
        self._last_ts = int(self.ts[-1])
        return True

    def _walk(self, pos: int, end: int) -> None:
        """Decode block by block from ``pos`` (``CaptureReader._pcapng``'s checks and reasons).

        Unless the file has ended, it stops at an enhanced packet block that follows other blocks (the
        section and interfaces at a file's start, statistics): the chunk from there is read again, and
        decoded at once if it can be.
        """
        space = self._arena.map
        after_other = False
        data: list[int] = []
        caplens: list[int] = []
        wirelens: list[int] = []
        times: list[int] = []
        ids: list[int] = []
        while True:
            left = end - pos
            if left < 12:
                if self.eof and left:
                    self._stop(f"truncated block header ({left} of 12 bytes)")
                break
            block_type = struct.unpack_from("<I", space, pos)[0]
            if block_type == PCAPNG_SHB:
                if struct.unpack_from("<I", space, pos + 8)[0] == PCAPNG_BOM:
                    self._order = "<"
                elif struct.unpack_from(">I", space, pos + 8)[0] == PCAPNG_BOM:
                    self._order = ">"
                else:
                    self._stop("corrupt section header: bad byte-order magic")
                    break
                self._interfaces, self._ids = [], []
            order = self._order
            block_type, length = struct.unpack_from(order + "II", space, pos)
            if length < 12 or length % 4 or length > MAX_BLOCK:
                self._stop(f"corrupt block: type {block_type:#x} with length {length}")
                break
            if left < length:
                if self.eof:
                    self._stop(f"truncated block: type {block_type:#x}, {left} of {length} bytes")
                elif length > SLOT:
                    self._stop(
                        f"block of type {block_type:#x} and {length} bytes: larger than the merge reads"
                    )
                break
            if block_type == BLOCK_EPB and after_other and not self.eof:
                break
            after_other = block_type not in (BLOCK_EPB, BLOCK_PB, BLOCK_SPB)
            body = pos + 8
            if block_type in (BLOCK_EPB, BLOCK_PB):
                if length < 32:
                    kind = "enhanced packet block" if block_type == BLOCK_EPB else "packet block"
                    self._stop(f"corrupt {kind} of length {length}")
                    break
                if block_type == BLOCK_EPB:
                    iface_id, high, low, caplen, wirelen = struct.unpack_from(order + "IIIII", space, body)
                else:
                    iface_id, _drops, high, low, caplen, wirelen = struct.unpack_from(
                        order + "HHIIII", space, body
                    )
                if iface_id >= len(self._interfaces) or caplen > length - 32:
                    kind = "enhanced packet block" if block_type == BLOCK_EPB else "packet block"
                    self._stop(f"corrupt {kind} (interface {iface_id}, caplen {caplen})")
                    break
                interface = self._interfaces[iface_id]
                self._last_ts = ((high << 32) | low) * interface.mult // interface.div + interface.offset_ns
                data.append(body + 20)
                caplens.append(caplen)
                wirelens.append(wirelen)
                times.append(self._last_ts)
                ids.append(self._ids[iface_id])
            elif block_type == BLOCK_IDB:
                interface_or_reason = interface_of(space, body, length, order)  # type: ignore[arg-type]
                if isinstance(interface_or_reason, str):
                    self._stop(interface_or_reason)
                    break
                self._interfaces.append(interface_or_reason)
                self._ids.append(self._output.interface(self.input.node, interface_or_reason.link_type))
            elif block_type == BLOCK_SPB:
                if not self._interfaces:
                    self._stop("simple packet block before any interface description")
                    break
                interface = self._interfaces[0]
                wirelen = struct.unpack_from(order + "I", space, body)[0]
                data.append(body + 4)
                caplens.append(min(wirelen, length - 16, interface.snaplen or wirelen))
                wirelens.append(wirelen)
                times.append(self._last_ts)
                ids.append(self._ids[0])
            pos += length
        self._next = pos - self._slot
        self.data = np.array(data, np.int64)
        self.caplen = np.array(caplens, np.int64)
        self.wirelen = np.array(wirelens, np.int64)
        self.ts = np.array(times, np.int64)
        self.interfaces = np.array(ids, np.int64)
