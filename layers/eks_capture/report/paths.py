"""The path analysis of a stored capture: every node's indexed files, streamed in time order, named.

Used by the report function at a capture's end (files streamed from S3) and by ``eks-capture path``
(pulled files). Each node's files are read one after another, oldest first, through the project's
reader; nothing is held but the matching window's packets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from eks_capture.captures.context import FINISHED_PHASES, ClusterContext
from eks_capture.pcap.paths import PathSummary, analyze_paths
from eks_capture.pcap.reader import CaptureReader, Record
from eks_capture.store.files import FileRecord

#: Gives the bytes of one indexed file (an S3 body or a local file): ``read`` and ``close``.
Opener = Callable[[FileRecord], Any]


def owners(context: ClusterContext | None) -> dict[str, str]:
    """IP -> the node it lives on: running pods (not host-network ones) and the nodes' own addresses."""
    if context is None:
        return {}
    found: dict[str, str] = {}
    for node in context.nodes:
        found.update(dict.fromkeys(node.ips, node.name))
    for pod in context.pods:
        if pod.node and not pod.host_network and pod.phase not in FINISHED_PHASES:
            found.update(dict.fromkeys(pod.ips, pod.node))
    return found


class NodeFiles:
    """One node's files as one stream of records; remembers the files that ended early."""

    def __init__(self, files: Iterable[FileRecord], opener: Opener) -> None:
        self.files = sorted(files, key=lambda f: (f.first_ts is None, f.first_ts, f.s3_key))
        self.opener = opener
        self.partial: dict[str, str] = {}

    def __iter__(self) -> Iterator[Record]:
        for record in self.files:
            body = self.opener(record)
            try:
                reader = CaptureReader(body)
                yield from reader
                if reader.partial:
                    self.partial[record.s3_key] = reader.reason or "ended early"
            finally:
                body.close()


def capture_paths(
    files: Sequence[FileRecord],
    opener: Opener,
    context: ClusterContext | None = None,
) -> tuple[PathSummary, dict[str, str]]:
    """The path analysis of a capture's files, flows named from its context; and the files cut short."""
    by_node: dict[str, list[FileRecord]] = defaultdict(list)
    for record in files:
        by_node[record.node].append(record)
    streams = {node: NodeFiles(by_node[node], opener) for node in sorted(by_node)}
    summary = analyze_paths(
        list(streams.items()), names=context.names() if context else None, owners=owners(context)
    )
    partial = {key: why for stream in streams.values() for key, why in stream.partial.items()}
    return summary, partial
