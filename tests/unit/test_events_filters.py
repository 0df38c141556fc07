"""tcpdump filters and label selectors: what BPF and Kubernetes accept passes, shell syntax does not."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eks_capture.events.fields import MAX_FILTER_LENGTH, check_bpf_filter
from eks_capture.kube.selectors import LabelSelector, LabelSelectorRequirement

BPF_CHARS = string.ascii_letters + string.digits + " .:/_-!=<>()[]&|+*%^"
NEVER_IN_BPF = ";`$'\"\\#{}\n\r\t\x00~?,@"


@pytest.mark.parametrize(
    "bpf",
    [
        "tcp port 443",
        "host 10.0.3.7 and (port 53 or port 853)",
        "tcp[tcpflags] & (tcp-syn|tcp-rst|tcp-fin) != 0",
        "net 192.168.0.0/16 and not port 22",
        "ip6 host fe80::1ff:fe23:4567:890a",
        "ether host 0a:1b:2c:3d:4e:5f",
        "greater 1000 or len <= 64",
        "udp and ip[6:2] & 0x1fff != 0",
        "icmp[icmptype] == icmp-unreach",
        "vlan and tcp dst portrange 8000-8100",
        "tcp[((tcp[12:1] & 0xf0) >> 2):4] = 0x47455420",
    ],
)
def test_common_bpf_filters_are_accepted_unchanged(bpf: str) -> None:
    assert check_bpf_filter(bpf) == bpf


@pytest.mark.parametrize(
    "bpf",
    [
        "tcp port 443; rm -rf /",
        "port `id -u`",
        "port $(id -u)",
        "host ${HOST}",
        "port 80 'or' port 443",
        'host "10.0.0.1"',
        "port 80\nport 443",
        "port 80 \\",
        "port 80 # comment",
        "-w /tmp/out",
        "--help",
        "(tcp port 443",
        "tcp[13 & 2 != 0",
        "x" * (MAX_FILTER_LENGTH + 1),
    ],
)
def test_filters_with_shell_syntax_options_or_broken_brackets_are_refused(bpf: str) -> None:
    with pytest.raises(ValueError, match="filter"):
        check_bpf_filter(bpf)


def test_surrounding_blanks_are_trimmed() -> None:
    assert check_bpf_filter("  tcp port 443 ") == "tcp port 443"


@given(
    st.text(
        alphabet=BPF_CHARS.replace("(", "").replace(")", "").replace("[", "").replace("]", ""), max_size=200
    )
)
def test_any_short_text_of_bpf_characters_is_accepted(text: str) -> None:
    if not text.strip().startswith("-"):
        assert check_bpf_filter(text) == text.strip()


@given(
    st.text(alphabet=BPF_CHARS, max_size=50),
    st.sampled_from(NEVER_IN_BPF),
    st.text(alphabet=BPF_CHARS, max_size=50),
)
def test_any_character_bpf_never_uses_is_refused_wherever_it_stands(
    before: str, bad: str, after: str
) -> None:
    with pytest.raises(ValueError, match="filter"):
        check_bpf_filter(f"tcp {before}{bad}{after} x")


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"matchLabels": {"pool": "general"}}, {"pool": "general", "zone": "a"}, True),
        ({"matchLabels": {"pool": "general"}}, {"pool": "gpu"}, False),
        ({"matchLabels": {"pool": "general"}}, {}, False),
        (
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]},
            {"zone": "b"},
            True,
        ),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]}]}, {}, False),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {"zone": "b"}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {}, True),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}, {"zone": "a"}, False),
        ({"matchExpressions": [{"key": "spot", "operator": "Exists"}]}, {"spot": ""}, True),
        ({"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}, {"spot": ""}, False),
        (
            {
                "matchLabels": {"pool": "general"},
                "matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}],
            },
            {"pool": "general"},
            True,
        ),
    ],
)
def test_label_selector_matches_as_kubernetes_does(
    selector: dict[str, object], labels: dict[str, str], matches: bool
) -> None:
    assert LabelSelector.model_validate(selector).matches(labels) is matches


@pytest.mark.parametrize(
    ("selector", "query"),
    [
        ({"matchLabels": {"b": "2", "a": "1"}}, "a=1,b=2"),
        ({"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x", "y"]}]}, "zone in (x,y)"),
        ({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["x"]}]}, "zone notin (x)"),
        ({"matchExpressions": [{"key": "spot", "operator": "Exists"}]}, "spot"),
        ({"matchExpressions": [{"key": "spot", "operator": "DoesNotExist"}]}, "!spot"),
    ],
)
def test_label_selector_renders_the_api_query_syntax(selector: dict[str, object], query: str) -> None:
    assert LabelSelector.model_validate(selector).to_selector_string() == query


@pytest.mark.parametrize(
    "key",
    ["", "a/", "/a", "UPPER.example.com/x", "-a", "a-", "x" * 64, "example.com/" + "x" * 64, "a b"],
)
def test_invalid_label_keys_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="label key"):
        LabelSelectorRequirement(key=key, operator="Exists")


@pytest.mark.parametrize(
    "key", ["app", "app.kubernetes.io/name", "eks.amazonaws.com/nodegroup", "A_b.c-d", "x" * 63]
)
def test_valid_label_keys_are_accepted(key: str) -> None:
    assert LabelSelectorRequirement(key=key, operator="Exists").key == key
