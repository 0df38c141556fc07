"""The stack's caps on what an alarm may ask: beyond a cap, a snap length or duration is clipped, a
fallback=all tag or a cluster is refused, and each change is said in words the session keeps."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from eks_capture.captures.alarm_limits import AlarmLimits, bound_alarm_options, refused_cluster
from eks_capture.captures.options import CaptureOptions
from eks_capture.settings import NodeFallback, Settings

ASKED = CaptureOptions(duration_seconds=300, snaplen=1536, filter="tcp", fallback=NodeFallback.NONE)
LIMITS = AlarmLimits(max_snaplen=1536, max_duration_seconds=900, fallback_all=False, clusters=("shop-prod",))
SETTINGS: dict[str, Any] = {
    "capture_bucket": "pcaps",
    "capture_table": "index",
    "capture_image": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture@sha256:" + "0" * 64,
    "cluster_names": "shop-prod,payments-prod",
}


@pytest.mark.parametrize(
    ("asked", "tags", "bounded", "said"),
    [
        pytest.param({}, {}, {}, {}, id="within every cap: unchanged, nothing said"),
        pytest.param(
            {"snaplen": 262144},
            {"eks-capture:snaplen": "262144"},
            {"snaplen": 1536},
            {"snaplen": "clipped from 262144 to 1536 bytes (asked by its eks-capture:snaplen tag)"},
            id="a snap length tag beyond the cap is clipped",
        ),
        pytest.param(
            {"snaplen": 262144, "duration_seconds": 3600},
            {},
            {"snaplen": 1536, "duration_seconds": 900},
            {},
            id="the stack's own defaults are clipped for alarms too, without a word: the alarm asked nothing",
        ),
        pytest.param(
            {"snaplen": 262144, "preset": "pod-traffic"},
            {},
            {"snaplen": 1536},
            {},
            id="a preset without a snap length of its own leaves the default, clipped without a word",
        ),
        pytest.param(
            {"duration_seconds": 3600},
            {"eks-capture:duration": "3600"},
            {"duration_seconds": 900},
            {"duration": "clipped from 3600 s to 900 s (asked by its eks-capture:duration tag)"},
            id="a duration tag beyond the cap is clipped",
        ),
        pytest.param(
            {"duration_seconds": 900, "snaplen": 64},
            {"eks-capture:duration": "900", "eks-capture:snaplen": "64"},
            {},
            {},
            id="values at the caps or below are kept",
        ),
        pytest.param(
            {"fallback": NodeFallback.ALL},
            {"eks-capture:fallback": "all"},
            {"fallback": NodeFallback.NONE},
            {"fallback": "refused eks-capture:fallback=all: AlarmAllowFallbackAll is false"},
            id="a fallback=all tag is refused unless allowed",
        ),
        pytest.param(
            {"fallback": NodeFallback.NONE},
            {"eks-capture:fallback": "none"},
            {},
            {},
            id="a fallback=none tag is always kept",
        ),
        pytest.param(
            {"fallback": NodeFallback.ALL},
            {},
            {},
            {},
            id="the stack's own fallback=all is the deployer's and is kept",
        ),
        pytest.param(
            {"snaplen": 65535, "duration_seconds": 1800, "fallback": NodeFallback.ALL},
            {"eks-capture:snaplen": "65535", "eks-capture:duration": "1800", "eks-capture:fallback": "all"},
            {"snaplen": 1536, "duration_seconds": 900, "fallback": NodeFallback.NONE},
            {"snaplen": "clipped", "duration": "clipped", "fallback": "refused"},
            id="every cap applies at once and each is said",
        ),
    ],
)
def test_an_alarm_gets_what_it_asks_within_the_caps_and_is_told_what_was_not(
    asked: dict[str, Any], tags: dict[str, str], bounded: dict[str, Any], said: dict[str, str]
) -> None:
    options = replace(ASKED, **asked)

    result = bound_alarm_options(options, tags, LIMITS)

    assert result.options == replace(options, **bounded)
    assert set(result.limited) == set(said)
    for option, words in said.items():
        assert words in result.limited[option], result.limited[option]


@pytest.mark.parametrize(
    ("asked", "limits", "said"),
    [
        (
            {"snaplen": 1536, "preset": "link-local"},
            replace(LIMITS, max_snaplen=128),
            {"snaplen": "clipped from 1536 to 128 bytes (asked by preset link-local)"},
        ),
        (
            {"duration_seconds": 60, "snaplen": 96, "preset": "headers-short"},
            replace(LIMITS, max_duration_seconds=30),
            {"duration": "clipped from 60 s to 30 s (asked by preset headers-short)"},
        ),
    ],
    ids=["a preset's own snap length", "a preset's own duration"],
)
def test_what_a_preset_sets_beyond_a_lower_cap_is_clipped_and_said(
    asked: dict[str, Any], limits: AlarmLimits, said: dict[str, str]
) -> None:
    result = bound_alarm_options(replace(ASKED, **asked), {}, limits)

    assert {option: words.split(":")[0] for option, words in result.limited.items()} == said


def test_a_fallback_all_tag_is_kept_when_the_stack_allows_it() -> None:
    options = replace(ASKED, fallback=NodeFallback.ALL)

    result = bound_alarm_options(options, {"eks-capture:fallback": "all"}, replace(LIMITS, fallback_all=True))

    assert (result.options, result.limited) == (options, {})


@pytest.mark.parametrize(
    ("clusters", "cluster", "refused"),
    [
        (("shop-prod",), "shop-prod", False),
        (("shop-prod",), "payments-prod", True),
        (("shop-prod", "payments-prod"), "payments-prod", False),
        ((), "anything", False),
    ],
)
def test_an_alarm_may_capture_only_on_the_clusters_alarms_may_capture_on(
    clusters: tuple[str, ...], cluster: str, refused: bool
) -> None:
    why = refused_cluster(cluster, replace(LIMITS, clusters=clusters))

    assert (why is not None) is refused
    if why is not None:
        assert why.startswith(f"refused cluster {cluster}: alarms may capture only on {', '.join(clusters)}")


@pytest.mark.parametrize(
    ("env", "limits"),
    [
        ({}, AlarmLimits(1536, 900, False, ("shop-prod", "payments-prod"))),
        (
            {
                "alarm_max_snaplen": 128,
                "alarm_max_duration_seconds": 60,
                "alarm_allow_fallback_all": True,
                "alarm_cluster_names": "payments-prod",
            },
            AlarmLimits(128, 60, True, ("payments-prod",)),
        ),
        ({"node_fallback": NodeFallback.ALL}, AlarmLimits(1536, 900, True, ("shop-prod", "payments-prod"))),
    ],
    ids=["the defaults", "every cap set", "a stack whose own fallback is all lets tags ask for it"],
)
def test_the_caps_come_from_the_stacks_settings(env: dict[str, Any], limits: AlarmLimits) -> None:
    assert AlarmLimits.from_settings(Settings.model_validate({**SETTINGS, **env})) == limits
