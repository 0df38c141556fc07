"""A root capture checks its effective capabilities before tcpdump: NET_RAW and SETGID, named when missing."""

from __future__ import annotations

import pytest

from eks_capture_agent.capabilities import REQUIRED_AS_ROOT, missing_capabilities


def _status(*bits: int) -> str:
    effective = f"{sum(1 << bit for bit in bits):016x}"
    lines = ["Name:\tpython", "CapInh:\t0000000000000000", f"CapPrm:\t{effective}", f"CapEff:\t{effective}"]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("held", "missing"),
    [
        ({"NET_RAW", "SETGID"}, []),
        ({"NET_RAW"}, ["SETGID"]),
        ({"SETGID"}, ["NET_RAW"]),
        (set(), ["NET_RAW", "SETGID"]),
    ],
)
def test_the_missing_ones_are_named(held: set[str], missing: list[str]) -> None:
    assert missing_capabilities(_status(*(REQUIRED_AS_ROOT[name] for name in held))) == missing


def test_other_capabilities_do_not_stand_in() -> None:
    everything_else = [bit for bit in range(41) if bit not in REQUIRED_AS_ROOT.values()]
    assert missing_capabilities(_status(*everything_else)) == sorted(
        REQUIRED_AS_ROOT, key=list(REQUIRED_AS_ROOT).index
    )


def test_full_root_lacks_nothing() -> None:
    assert missing_capabilities(_status(*range(41))) == []
