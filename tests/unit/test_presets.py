"""Metric-aware presets: what an alarm watches decides how to capture, unless its tags say otherwise."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest

from eks_capture.captures.context import PodEntry
from eks_capture.captures.options import CaptureOptions, capture_options_for_alarm
from eks_capture.captures.presets import PRESETS, pod_hosts_filter, preset_for_metrics
from eks_capture.errors import CaptureRejected
from eks_capture.events.fields import check_bpf_filter
from eks_capture.events.models import AlarmStateChange, Metric, parse_event
from eks_capture.settings import NodeFallback
from tests.events import load_event

DEFAULTS = CaptureOptions(duration_seconds=300, snaplen=262144, filter=None, fallback=NodeFallback.NONE)
MAX = 3600
INSTANCE = {"InstanceId": "i-0a1b2c3d4e5f60718", "driver": "ena", "interface": "eth0"}
POD = {"ClusterName": "shop-prod", "Namespace": "payments", "PodName": "checkout"}
TARGET_GROUP = {
    "TargetGroup": "targetgroup/api/0123456789abcdef",
    "LoadBalancer": "app/shop/0123456789abcdef",
}


def alarm_on(
    namespace: str, name: str, dimensions: dict[str, str], tags: dict[str, str] | None = None
) -> Any:
    """The sample single-metric alarm, now watching ``namespace/name``."""
    raw = load_event("alarm-single-metric-instance")
    raw["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"] = {
        "namespace": namespace,
        "name": name,
        "dimensions": dimensions,
    }
    raw["detail"]["alarmTags"] = tags or {}
    event = parse_event(raw)
    assert isinstance(event, AlarmStateChange)
    return event


def options_for(event: AlarmStateChange) -> CaptureOptions:
    tags = event.detail.alarm_tags or {}
    return capture_options_for_alarm(event, tags, DEFAULTS, max_duration_seconds=MAX)


@pytest.mark.parametrize(
    ("namespace", "metric", "dimensions", "expect"),
    [
        pytest.param(
            "CWAgent",
            "ethtool_linklocal_allowance_exceeded",
            INSTANCE,
            lambda o: "port 53" in o.filter and "169.254.0.0/16" in o.filter and o.snaplen >= 1500,
            id="link-local-throttling-captures-dns-and-link-local-services-whole",
        ),
        pytest.param(
            "CWAgent",
            "ethtool_conntrack_allowance_exceeded",
            INSTANCE,
            lambda o: "tcp-syn|tcp-rst|tcp-fin" in o.filter and o.snaplen <= 128,
            id="conntrack-full-captures-syn-rst-fin-headers",
        ),
        *(
            pytest.param(
                "CWAgent",
                f"ethtool_{counter}_allowance_exceeded",
                INSTANCE,
                lambda o: o.filter is None and o.snaplen <= 128 and o.duration_seconds <= 60,
                id=f"{counter}-allowance-captures-all-headers-briefly",
            )
            for counter in ("pps", "bw_in", "bw_out")
        ),
        pytest.param(
            "ContainerInsights",
            "pod_interface_network_rx_dropped",
            POD,
            lambda o: o.narrow_to_pods and o.snaplen == DEFAULTS.snaplen,
            id="pod-drops-capture-the-pod-s-traffic-whole",
        ),
        pytest.param(
            "ContainerInsights",
            "node_interface_network_tx_errors",
            {"ClusterName": "shop-prod", "NodeName": "n1"},
            lambda o: o.filter is None and o.snaplen <= 128,
            id="node-errors-capture-the-node-s-headers",
        ),
        pytest.param(
            "AWS/ApplicationELB",
            "TargetConnectionErrorCount",
            TARGET_GROUP,
            lambda o: o.filter == "tcp",
            id="target-connection-errors-capture-tcp",
        ),
        pytest.param(
            "AWS/EC2",
            "CPUUtilization",
            {"InstanceId": "i-0a1b2c3d4e5f60718"},
            lambda o: o == DEFAULTS,
            id="a-metric-without-preset-keeps-the-stack-defaults",
        ),
    ],
)
def test_the_watched_metric_chooses_how_to_capture(
    namespace: str, metric: str, dimensions: dict[str, str], expect: Any
) -> None:
    options = options_for(alarm_on(namespace, metric, dimensions))

    assert expect(options), options
    assert (options.preset is None) == (options == DEFAULTS)


@pytest.mark.parametrize(
    ("tags", "field", "value"),
    [
        pytest.param({"eks-capture:filter": "udp port 53"}, "filter", "udp port 53", id="filter"),
        pytest.param({"eks-capture:filter": "all"}, "filter", None, id="filter-all"),
        pytest.param({"eks-capture:snaplen": "65535"}, "snaplen", 65535, id="snaplen"),
        pytest.param({"eks-capture:duration": "900"}, "duration_seconds", 900, id="duration"),
    ],
)
def test_tags_override_what_the_preset_chose(tags: dict[str, str], field: str, value: object) -> None:
    event = alarm_on("CWAgent", "ethtool_conntrack_allowance_exceeded", INSTANCE, tags)
    untagged = options_for(alarm_on("CWAgent", "ethtool_conntrack_allowance_exceeded", INSTANCE))
    assert getattr(untagged, field) != value

    options = options_for(event)

    assert getattr(options, field) == value
    assert options.preset == untagged.preset


def test_a_preset_tag_of_none_keeps_the_stack_defaults() -> None:
    event = alarm_on(
        "CWAgent", "ethtool_conntrack_allowance_exceeded", INSTANCE, {"eks-capture:preset": "none"}
    )

    assert options_for(event) == DEFAULTS


def test_a_preset_tag_chooses_another_preset_than_the_metric_s() -> None:
    linklocal = options_for(alarm_on("CWAgent", "ethtool_linklocal_allowance_exceeded", INSTANCE))
    assert linklocal.preset is not None
    tagged = alarm_on(
        "CWAgent", "ethtool_pps_allowance_exceeded", INSTANCE, {"eks-capture:preset": linklocal.preset}
    )

    assert options_for(tagged) == linklocal


def test_a_port_tag_narrows_the_target_preset_to_that_port() -> None:
    event = alarm_on(
        "AWS/ApplicationELB", "HTTPCode_Target_5XX_Count", TARGET_GROUP, {"eks-capture:port": "8443"}
    )

    assert options_for(event).filter == "tcp port 8443"


def test_a_tag_filter_wins_over_the_pod_preset_s_narrowing() -> None:
    event = alarm_on(
        "ContainerInsights", "pod_interface_network_tx_dropped", POD, {"eks-capture:filter": "udp"}
    )

    options = options_for(event)

    assert (options.filter, options.narrow_to_pods) == ("udp", False)


@pytest.mark.parametrize(
    ("tag", "value"),
    [("eks-capture:preset", "fastest"), ("eks-capture:port", "0"), ("eks-capture:port", "http")],
)
def test_bad_preset_tags_are_refused_naming_the_tag(tag: str, value: str) -> None:
    event = alarm_on("CWAgent", "ethtool_pps_allowance_exceeded", INSTANCE, {tag: value})

    with pytest.raises(CaptureRejected) as rejected:
        options_for(event)

    assert rejected.value.field == f"tags.{tag}"


def test_a_preset_never_exceeds_the_stack_s_longest_capture() -> None:
    event = alarm_on("CWAgent", "ethtool_pps_allowance_exceeded", INSTANCE)

    options = capture_options_for_alarm(event, {}, DEFAULTS, max_duration_seconds=30)

    assert options.duration_seconds == 30


def test_the_first_metric_with_a_preset_decides_for_metric_math() -> None:
    event = parse_event(load_event("alarm-metric-math"))
    assert isinstance(event, AlarmStateChange)

    assert preset_for_metrics(event.metrics) == preset_for_metrics(event.metrics[:1])
    assert preset_for_metrics(event.metrics) is not None


def _pod(name: str, ip: str, **fields: Any) -> PodEntry:
    return PodEntry(
        namespace=fields.pop("namespace", "payments"), name=name, ips=[ip], phase="Running", **fields
    )


CHECKOUT_A = _pod("checkout-7f9c6d5b8-x2k4p", "10.0.1.5", workload="checkout")
CHECKOUT_B = _pod("checkout-7f9c6d5b8-q8w1z", "10.0.2.6", workload="checkout")


@pytest.mark.parametrize(
    ("dimensions", "pods", "hosts"),
    [
        pytest.param(POD, [CHECKOUT_A, CHECKOUT_B], {"10.0.1.5", "10.0.2.6"}, id="every-pod-of-the-workload"),
        pytest.param(
            {"Namespace": "payments", "FullPodName": CHECKOUT_A.name},
            [CHECKOUT_A, CHECKOUT_B],
            {"10.0.1.5"},
            id="full-pod-name-is-one-pod",
        ),
        pytest.param(
            POD,
            [_pod("checkout-1", "10.0.3.1", workload="checkout", namespace="shop")],
            None,
            id="other-namespace",
        ),
        pytest.param(
            POD,
            [
                PodEntry(
                    namespace="payments", name="c", workload="checkout", ips=["10.0.3.1"], phase="Succeeded"
                )
            ],
            None,
            id="finished-pods-are-not-the-pod-s-traffic",
        ),
        pytest.param(
            POD,
            [
                PodEntry(
                    namespace="payments", name="c", workload="checkout", ips=["10.0.3.1"], host_network=True
                )
            ],
            None,
            id="host-network-pods-would-be-the-whole-node",
        ),
        pytest.param(
            POD,
            [_pod(f"checkout-{i}", f"10.0.4.{i}", workload="checkout") for i in range(40)],
            None,
            id="too-many-pods-for-one-filter-capture-the-nodes",
        ),
    ],
)
def test_the_pod_preset_captures_the_addresses_of_the_pods_the_alarm_names(
    dimensions: dict[str, str], pods: list[PodEntry], hosts: set[str] | None
) -> None:
    metric = Metric(
        namespace="ContainerInsights", name="pod_interface_network_rx_dropped", dimensions=dimensions
    )

    found = pod_hosts_filter([metric], pods)

    if hosts is None:
        assert found is None
    else:
        assert found is not None
        assert set(found.split(" or ")) == {f"host {ip}" for ip in hosts}
        check_bpf_filter(found)


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.name)
def test_every_preset_filter_is_a_filter_tcpdump_compiles(preset: Any) -> None:
    tcpdump = shutil.which("tcpdump")
    assert tcpdump is not None, "tcpdump is part of the test set-up"
    for bpf in {preset.capture_filter(None), preset.capture_filter(8443)} - {None}:
        assert check_bpf_filter(bpf) == bpf
        compiled = subprocess.run([tcpdump, "-d", "-y", "EN10MB", bpf], capture_output=True, text=True)
        assert compiled.returncode == 0, compiled.stderr
