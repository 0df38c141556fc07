"""How much text a capture session item may hold: DynamoDB refuses an item over 400 KB, and a refused write
of a session is a capture that cannot say what happened (not even ``failed``).

A session of the most nodes (1,000) spends ~250 bytes a node on its node's name (twice: key and record),
instance id, Job name and status before any free text. What is left is shared: all nodes' reasons together
take at most REASONS_BYTES, what matched them MATCHED_BY_BYTES, each node's at most NODE_TEXT_MOST (a
capture of few nodes keeps the API's whole message), and the verdict VERDICT_BYTES. The targets skipped are
as many as a cluster's nodes (a selector over 5,000 nodes skips 4,000 over the cap): SKIPPED_NAMED of them
are named, the rest counted by reason; the trigger's start log line names its notes alike (NOTES_NAMED of
them, one per unready endpoint or unscheduled pod of a selector). A finding keeps FINDING_BYTES. Longer
text keeps its head and says what was cut: ``…(truncated, 612 bytes)``. docs/design.md ("Session size")
has the worst case.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

#: All nodes' reasons together: 64 bytes a node at 1,000 nodes.
REASONS_BYTES = 64_000
#: All nodes' ``matched_by`` together: 32 bytes a node at 1,000 nodes.
MATCHED_BY_BYTES = 32_000
#: The most one node's reason or ``matched_by`` keeps, however few the nodes.
NODE_TEXT_MOST = 2_048
#: The skipped targets a session names (each name and reason in SKIPPED_TEXT_BYTES); the others are counted.
SKIPPED_NAMED = 20
SKIPPED_TEXT_BYTES = 128
#: The notes on the targets' choice a start log line names (each in NOTE_BYTES); the others are counted.
NOTES_NAMED = 20
NOTE_BYTES = 512
#: Each of the session's top findings (the reaper keeps five).
FINDING_BYTES = 512
#: The session's verdict (it names the nodes' distinct outcomes: as many as the nodes, at worst).
VERDICT_BYTES = 4_096


def node_text_limit(budget: int, nodes: int) -> int:
    """The bytes each of ``nodes`` nodes may keep of a text all of them share ``budget`` for."""
    return min(NODE_TEXT_MOST, budget // max(nodes, 1))


def clipped(text: str, limit: int) -> str:
    """``text`` if its UTF-8 takes at most ``limit`` bytes, else its head and ``…(truncated, N bytes)``
    (N: the whole text's size) in ``limit`` bytes, cut between characters."""
    size = len(text.encode())
    if size <= limit:
        return text
    marker = f"…(truncated, {size} bytes)"
    room = max(limit - len(marker.encode()), 0)
    return text.encode()[:room].decode(errors="ignore") + marker


def kept_reason(reason: str, nodes: int) -> str:
    """A node's reason as a session of ``nodes`` nodes keeps it, and so as a notification lists it."""
    return clipped(reason, node_text_limit(REASONS_BYTES, nodes))


def named_skips(skipped: dict[str, str]) -> dict[str, str]:
    """The skipped targets as a session keeps them: the first SKIPPED_NAMED by name, and when there are
    more, one entry counting the rest by reason (``and 3950 more``: ``over the cap of 1000 nodes per
    capture (3949); NotReady (1)``). A name cut to the same head as one named already is counted too."""
    kept: dict[str, str] = {}
    rest: list[str] = []
    for target, why in skipped.items():
        name = clipped(target, SKIPPED_TEXT_BYTES)
        if len(kept) < SKIPPED_NAMED and name not in kept:
            kept[name] = clipped(why, SKIPPED_TEXT_BYTES)
        else:
            rest.append(why)
    if rest:
        counted = "; ".join(f"{why} ({count})" for why, count in Counter(rest).most_common())
        kept[f"and {len(rest)} more"] = clipped(counted, 4 * SKIPPED_TEXT_BYTES)
    return kept


def named_notes(notes: Sequence[str]) -> list[str]:
    """The notes on how the targets were chosen as the start log line names them: the first NOTES_NAMED,
    and when there are more, one counting the rest (``and 3980 more``), since a selector notes each of its
    thousands of unready endpoints or unscheduled pods: whole, they would pass CloudWatch Logs' 256 KB
    event."""
    kept = [clipped(note, NOTE_BYTES) for note in notes[:NOTES_NAMED]]
    rest = len(notes) - len(kept)
    return [*kept, f"and {rest} more"] if rest else kept
