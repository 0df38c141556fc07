"""Settings: read once from the environment; a bad variable is named in one clear error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eks_capture.errors import SettingsInvalid
from eks_capture.kube.eks import BACKOFF_FACTOR_SECONDS
from eks_capture.settings import MIB, NodeFallback, Settings
from eks_capture.store.keys import TRANSACTION_BACKOFF_SECONDS

REQUIRED = {
    "CAPTURE_BUCKET": "eks-capture-123456789012-us-west-2",
    "CAPTURE_TABLE": "eks-capture-index",
    "CAPTURE_IMAGE": "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture-agent@sha256:" + "a" * 64,
}


def test_required_variables_alone_give_documented_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.capture_namespace == "eks-capture"
    assert settings.node_fallback is NodeFallback.NONE
    assert settings.default_duration_seconds <= settings.max_duration_seconds
    assert settings.expected_account is None


def test_every_field_is_read_from_its_upper_case_variable() -> None:
    env = {
        **REQUIRED,
        "CAPTURE_NAMESPACE": "net-debug",
        "CAPTURE_SERVICE_ACCOUNT": "uploader",
        "ALARM_NAME_PREFIX": "shop-",
        "DEFAULT_CLUSTER": "shop-prod",
        "CLUSTER_NAMES": "shop-prod,payments-prod",
        "EXPECTED_ACCOUNT": "123456789012",
        "AWS_REGION": "us-west-2",
        "DEFAULT_DURATION_SECONDS": "120",
        "MAX_DURATION_SECONDS": "900",
        "MAX_NODES_PER_CAPTURE": "3",
        "MAX_CONCURRENT_CAPTURES": "2",
        "ALARM_COOLDOWN_SECONDS": "60",
        "NODE_FALLBACK": "all",
        "ALARM_MAX_SNAPLEN": "128",
        "ALARM_MAX_DURATION_SECONDS": "600",
        "ALARM_ALLOW_FALLBACK_ALL": "True",
        "ALARM_CLUSTER_NAMES": "payments-prod",
        "UPLOAD_GRACE_SECONDS": "30",
        "JOB_TTL_SECONDS": "600",
        "SPOOL_SIZE_LIMIT": "1Gi",
        "DEFAULT_SNAPLEN": "128",
        "ROTATE_SECONDS": "30",
        "ROTATE_MEGABYTES": "16",
        "RECORDER_ROTATE_SECONDS": "4",
        "API_PARALLELISM": "4",
        "NOTIFICATION_TOPIC_ARN": "arn:aws:sns:us-west-2:123456789012:eks-capture",
        "LIFECYCLE_BUS_NAME": "eks-capture-lifecycle",
        "PENDING_BOUND_SECONDS": "120",
        "INDEX_WAIT_SECONDS": "600",
        "CAPTURE_IMAGE_TAGS_ALLOWED": "True",
        "KUBE_RETRY_BACKOFF_MS": "20",
        "STORE_RETRY_BACKOFF_MS": "5",
    }
    settings = Settings.from_env(env)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        assert str(getattr(value, "value", value)) == env[name.upper()], name


@pytest.mark.parametrize(
    ("variable", "field", "production_seconds", "set_ms", "set_seconds"),
    [
        ("KUBE_RETRY_BACKOFF_MS", "kube_retry_backoff_seconds", BACKOFF_FACTOR_SECONDS, "20", 0.02),
        ("STORE_RETRY_BACKOFF_MS", "store_retry_backoff_seconds", TRANSACTION_BACKOFF_SECONDS, "5", 0.005),
    ],
)
def test_a_retry_backoff_is_productions_unless_set_and_never_longer(
    variable: str, field: str, production_seconds: float, set_ms: str, set_seconds: float
) -> None:
    assert getattr(Settings.from_env(REQUIRED), field) == production_seconds
    assert getattr(Settings.from_env({**REQUIRED, variable: set_ms}), field) == set_seconds
    with pytest.raises(SettingsInvalid):
        Settings.from_env({**REQUIRED, variable: str(int(production_seconds * 1000) + 1)})


def test_blank_variables_count_as_unset() -> None:
    assert Settings.from_env({**REQUIRED, "CAPTURE_NAMESPACE": "  "}).capture_namespace == "eks-capture"


TAGGED = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture-agent:1.0.0"
PINNED = "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture-agent@sha256:" + "b" * 64


@pytest.mark.parametrize(
    ("image", "tags_allowed", "accepted"),
    [
        (PINNED, None, True),
        (f"{TAGGED}@sha256:" + "b" * 64, None, True),
        (TAGGED, None, False),
        (TAGGED, "false", False),
        (TAGGED, "true", True),
        (PINNED, "true", True),
        (PINNED.replace("b" * 64, "B" * 64), None, False),
    ],
)
def test_the_capture_image_must_be_pinned_by_digest_unless_tags_are_allowed(
    image: str, tags_allowed: str | None, accepted: bool
) -> None:
    env = {**REQUIRED, "CAPTURE_IMAGE": image}
    if tags_allowed is not None:
        env["CAPTURE_IMAGE_TAGS_ALLOWED"] = tags_allowed
    if accepted:
        assert Settings.from_env(env).capture_image == image
    else:
        with pytest.raises(SettingsInvalid) as raised:
            Settings.from_env(env)
        assert raised.value.variable == "CAPTURE_IMAGE"


def test_no_capture_image_is_read_as_none_until_the_first_one_is_deployed() -> None:
    env = {name: value for name, value in REQUIRED.items() if name != "CAPTURE_IMAGE"}

    assert Settings.from_env(env).capture_image is None
    assert Settings.from_env({**env, "CAPTURE_IMAGE": " "}).capture_image is None


def test_settings_are_immutable() -> None:
    settings = Settings.from_env(REQUIRED)
    with pytest.raises(ValidationError):
        settings.max_nodes_per_capture = 99


def test_reads_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in REQUIRED.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MAX_NODES_PER_CAPTURE", "7")
    assert Settings.from_env().max_nodes_per_capture == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CAPTURE_BUCKET", None),
        ("CAPTURE_BUCKET", "Not_A_Bucket"),
        ("CAPTURE_TABLE", "x"),
        ("CAPTURE_TABLE", None),
        ("CAPTURE_IMAGE", "image with spaces"),
        ("CAPTURE_IMAGE", "repo@sha256:short"),
        ("CAPTURE_IMAGE", "123456789012.dkr.ecr.us-west-2.amazonaws.com/eks-capture-agent:1.0.0"),
        ("CAPTURE_IMAGE_TAGS_ALLOWED", "maybe"),
        ("CAPTURE_NAMESPACE", "Eks_Capture"),
        ("CAPTURE_SERVICE_ACCOUNT", "-bad-"),
        ("EXPECTED_ACCOUNT", "1234"),
        ("DEFAULT_DURATION_SECONDS", "5"),
        ("MAX_DURATION_SECONDS", "999999"),
        ("MAX_NODES_PER_CAPTURE", "0"),
        ("MAX_NODES_PER_CAPTURE", "ten"),
        ("NODE_FALLBACK", "some"),
        ("UPLOAD_GRACE_SECONDS", "1"),
        ("INDEX_WAIT_SECONDS", "90000"),  # past EventBridge's 24 h of retries: nothing indexes a file after
        ("SPOOL_SIZE_LIMIT", "2 gigabytes"),
        ("SPOOL_SIZE_LIMIT", "1Mi"),
        ("DEFAULT_SNAPLEN", "10"),
        ("ROTATE_SECONDS", "0"),
        ("RECORDER_ROTATE_SECONDS", "0"),
        ("KUBE_RETRY_BACKOFF_MS", "0"),
        ("KUBE_RETRY_BACKOFF_MS", "201"),  # longer than production's: past the functions' timeout budget
        ("STORE_RETRY_BACKOFF_MS", "0"),
        ("STORE_RETRY_BACKOFF_MS", "51"),  # longer than production's, likewise
        ("STORE_RETRY_BACKOFF_MS", "fast"),
        ("ALARM_NAME_PREFIX", "line\nbreak"),
        ("CLUSTER_NAMES", "shop-prod,,payments-prod"),
        ("CLUSTER_NAMES", "shop-prod,-payments"),
        ("CLUSTER_NAMES", "shop-prod,shop-prod"),
        ("ALARM_MAX_SNAPLEN", "10"),
        ("ALARM_MAX_SNAPLEN", "300000"),
        ("ALARM_MAX_DURATION_SECONDS", "5"),
        ("ALARM_ALLOW_FALLBACK_ALL", "sometimes"),
        ("ALARM_CLUSTER_NAMES", "shop-prod,,payments-prod"),
    ],
)
def test_bad_variable_is_named_in_the_error(variable: str, value: str | None) -> None:
    env = (
        {**REQUIRED, variable: value}
        if value is not None
        else {k: v for k, v in REQUIRED.items() if k != variable}
    )
    with pytest.raises(SettingsInvalid) as raised:
        Settings.from_env({k: v for k, v in env.items() if v is not None})
    assert raised.value.variable == variable
    assert raised.value.to_dict()["variable"] == variable
    assert raised.value.message.startswith(f"{variable}: ")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEFAULT_DURATION_SECONDS": "1200", "MAX_DURATION_SECONDS": "600"}, "DEFAULT_DURATION_SECONDS"),
        ({"SPOOL_SIZE_LIMIT": "100Mi", "ROTATE_MEGABYTES": "64"}, "SPOOL_SIZE_LIMIT"),
        ({"DEFAULT_CLUSTER": "staging", "CLUSTER_NAMES": "shop-prod,payments-prod"}, "DEFAULT_CLUSTER"),
        (
            {"ALARM_CLUSTER_NAMES": "staging", "CLUSTER_NAMES": "shop-prod,payments-prod"},
            "ALARM_CLUSTER_NAMES",
        ),
        ({"ALARM_CLUSTER_NAMES": "staging", "DEFAULT_CLUSTER": "shop-prod"}, "ALARM_CLUSTER_NAMES"),
    ],
)
def test_inconsistent_variables_name_the_one_to_change(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsInvalid) as raised:
        Settings.from_env({**REQUIRED, **env})
    assert raised.value.variable == variable


@pytest.mark.parametrize(("limit", "rotate_mb"), [("2Gi", 64), ("512Mi", 16), ("1G", 100), ("64Mi", 8)])
def test_upload_budget_leaves_room_for_the_file_being_written(limit: str, rotate_mb: int) -> None:
    settings = Settings.from_env({**REQUIRED, "SPOOL_SIZE_LIMIT": limit, "ROTATE_MEGABYTES": str(rotate_mb)})
    assert settings.spool_budget_bytes + rotate_mb * MIB < settings.spool_size_bytes
    assert settings.spool_budget_bytes >= 2 * rotate_mb * MIB


@pytest.mark.parametrize(
    ("alarm_name", "watched"),
    [
        ("eks-capture-conntrack", True),
        ("eks-capture-", True),
        ("prod-eks-capture-x", False),
        ("EKS-CAPTURE-x", False),
    ],
)
def test_stack_watches_alarms_by_name_prefix(alarm_name: str, watched: bool) -> None:
    assert Settings.from_env(REQUIRED).watches_alarm(alarm_name) is watched


@pytest.mark.parametrize(
    ("env", "clusters"),
    [
        ({}, ()),
        ({"DEFAULT_CLUSTER": "shop-prod"}, ("shop-prod",)),
        ({"CLUSTER_NAMES": "shop-prod"}, ("shop-prod",)),
        (
            {"DEFAULT_CLUSTER": "shop-prod", "CLUSTER_NAMES": "shop-prod, payments-prod"},
            ("shop-prod", "payments-prod"),
        ),
        (
            {"DEFAULT_CLUSTER": "payments-prod", "CLUSTER_NAMES": "shop-prod,payments-prod"},
            ("shop-prod", "payments-prod"),
        ),
    ],
)
def test_the_stacks_clusters_are_cluster_names_else_the_default_cluster(
    env: dict[str, str], clusters: tuple[str, ...]
) -> None:
    assert Settings.from_env({**REQUIRED, **env}).clusters == clusters


@pytest.mark.parametrize(
    ("env", "cluster", "served"),
    [
        ({"CLUSTER_NAMES": "shop-prod,payments-prod"}, "payments-prod", True),
        ({"CLUSTER_NAMES": "shop-prod,payments-prod"}, "staging", False),
        ({"CLUSTER_NAMES": "shop-prod,payments-prod"}, "Shop-Prod", False),
        ({"DEFAULT_CLUSTER": "shop-prod"}, "payments-prod", False),
        ({}, "any-cluster", True),
    ],
)
def test_a_capture_may_run_only_on_one_of_the_stacks_clusters(
    env: dict[str, str], cluster: str, served: bool
) -> None:
    assert Settings.from_env({**REQUIRED, **env}).serves(cluster) is served


def test_alarm_caps_default_to_headers_fifteen_minutes_no_fallback_all_and_every_cluster() -> None:
    settings = Settings.from_env({**REQUIRED, "CLUSTER_NAMES": "shop-prod,payments-prod"})

    assert settings.alarm_max_snaplen == 1536
    assert settings.alarm_max_duration_seconds == 900
    assert settings.alarm_allow_fallback_all is False
    assert settings.alarm_clusters == ("shop-prod", "payments-prod")


@pytest.mark.parametrize(
    ("env", "alarm_clusters"),
    [
        ({"CLUSTER_NAMES": "shop-prod,payments-prod"}, ("shop-prod", "payments-prod")),
        (
            {"CLUSTER_NAMES": "shop-prod,payments-prod", "ALARM_CLUSTER_NAMES": "payments-prod"},
            ("payments-prod",),
        ),
        (
            {"CLUSTER_NAMES": "shop-prod,payments-prod", "ALARM_CLUSTER_NAMES": " "},
            ("shop-prod", "payments-prod"),
        ),
        ({"DEFAULT_CLUSTER": "shop-prod"}, ("shop-prod",)),
    ],
)
def test_alarms_may_capture_on_alarm_cluster_names_else_every_cluster_of_the_stack(
    env: dict[str, str], alarm_clusters: tuple[str, ...]
) -> None:
    assert Settings.from_env({**REQUIRED, **env}).alarm_clusters == alarm_clusters
