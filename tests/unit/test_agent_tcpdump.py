"""tcpdump's command line and its stderr: counters parsed, errors surfaced, the filter kept whole."""

from __future__ import annotations

import pytest

from eks_capture_agent.tcpdump import (
    CaptureSettings,
    TcpdumpCounters,
    error_message,
    parse_counters,
    tcpdump_argv,
)

SETTINGS = CaptureSettings(
    interface="eth0", filter="tcp port 443 and (host 10.0.0.1 or host 10.0.0.2)", snaplen=96,
    rotate_seconds=30, rotate_megabytes=50, buffer_kib=4096,
)  # fmt: skip
BANNER = "tcpdump: listening on eth0, link-type EN10MB (Ethernet), snapshot length 96 bytes"


def _stats(captured: int, received: int, dropped: int) -> list[str]:
    def plural(count: int) -> str:
        return "packet" if count == 1 else "packets"

    return [
        BANNER,
        f"{captured} {plural(captured)} captured",
        f"{received} {plural(received)} received by filter",
        f"{dropped} {plural(dropped)} dropped by kernel",
    ]


@pytest.mark.parametrize(("captured", "received", "dropped"), [(0, 0, 0), (1, 1, 1), (170434, 340900, 12)])
def test_closing_counters_are_read_in_singular_and_plural(captured: int, received: int, dropped: int) -> None:
    counters = parse_counters(_stats(captured, received, dropped))
    assert counters == TcpdumpCounters(captured, received, dropped, None)


def test_the_interface_drop_line_is_read_when_tcpdump_prints_it() -> None:
    counters = parse_counters([*_stats(5, 6, 0), "7 packets dropped by interface"])
    assert counters.dropped_by_interface == 7


def test_counters_are_unknown_when_tcpdump_died_before_printing_them() -> None:
    assert parse_counters([BANNER]) == TcpdumpCounters()


@pytest.mark.parametrize(
    "message",
    [
        "tcpdump: syntax error in filter expression: syntax error",
        "tcpdump: nosuch0: No such device exists\n(SIOCGIFHWADDR: No such device)",
        "tcpdump: eth0: You don't have permission to perform this capture on that device",
    ],
)
def test_the_error_message_is_what_tcpdump_said_besides_banner_and_counters(message: str) -> None:
    assert error_message([BANNER, *message.splitlines(), *_stats(0, 0, 0)[1:]]) == message


def test_the_filter_is_one_argument_after_the_end_of_options() -> None:
    argv = tcpdump_argv(SETTINGS, as_root=False)
    assert argv[-2:] == ["--", SETTINGS.filter]
    assert argv.count(SETTINGS.filter) == 1


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_tcpdump_streams_each_packet_to_the_capture_role_which_rotates_the_files() -> None:
    argv = tcpdump_argv(SETTINGS, as_root=False)
    assert _option(argv, "-w") == "-"
    assert "-U" in argv
    assert "-G" not in argv
    assert "-C" not in argv
    assert _option(argv, "-s") == str(SETTINGS.snaplen)
    assert _option(argv, "-i") == SETTINGS.interface


def test_root_tcpdump_is_told_to_stay_root() -> None:
    assert _option(tcpdump_argv(SETTINGS, as_root=True), "-Z") == "root"


def test_non_root_tcpdump_gets_no_user_switch() -> None:
    assert "-Z" not in tcpdump_argv(SETTINGS, as_root=False)


def test_no_filter_leaves_the_end_of_options_out() -> None:
    settings = CaptureSettings("any", "  ", 262144, 60, 0, 8192)
    assert "--" not in tcpdump_argv(settings, as_root=False)
