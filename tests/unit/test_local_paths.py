"""A local pod's mount paths become its temp dirs once, even when one mount path prefixes the temp dirs."""

from __future__ import annotations

import pytest

from localcloud.kube.downward import substitute_paths

MOUNTS = [("/spool", "/tmp/kube-x/pods/p1/volumes/spool"), ("/tmp", "/tmp/kube-x/pods/p1/volumes/tmp")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("/spool", "/tmp/kube-x/pods/p1/volumes/spool", id="spool-mapped-once"),
        pytest.param("/tmp/file", "/tmp/kube-x/pods/p1/volumes/tmp/file", id="path-under-a-mount"),
        pytest.param(
            "--x=/spool/a,/tmp",
            "--x=/tmp/kube-x/pods/p1/volumes/spool/a,/tmp/kube-x/pods/p1/volumes/tmp",
            id="several-in-one-value",
        ),
        pytest.param("/spooler /tmpfs", "/spooler /tmpfs", id="longer-names-untouched"),
    ],
)
def test_mount_paths_are_substituted_in_one_pass(text: str, expected: str) -> None:
    assert substitute_paths(text, MOUNTS) == expected
