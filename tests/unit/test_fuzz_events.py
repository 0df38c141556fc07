"""Any JSON at any entry point gives a typed event or a structured CaptureRejected, and a rejected
event touches nothing: no table, no cluster, no bucket. The sample events of events/, mutated at any
place, probe the edges of every field; random JSON probes the envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, get_args

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eks_capture.captures import indexer, trigger
from eks_capture.captures.deps import AwsClients, Deps
from eks_capture.captures.options import CaptureOptions, capture_options_for_alarm
from eks_capture.errors import CaptureRejected, SettingsInvalid
from eks_capture.events.fields import MAX_FILTER_LENGTH, check_bpf_filter
from eks_capture.events.models import (
    AlarmStateChange,
    Event,
    S3Notification,
    StartCapture,
    parse_event,
)
from eks_capture.settings import Settings
from tests.events import event_names, load_event

MODELS = get_args(Event)  # every entry event, including ones added later
SAMPLES = event_names()
MAX_DURATION = 3600
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BASE_ENV = {
    "CAPTURE_BUCKET": "captures-bucket",
    "CAPTURE_TABLE": "captures",
    "CAPTURE_IMAGE": "example.com/eks-capture@sha256:" + "0" * 64,
}

json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.sampled_from(["", "ALARM", "eks-capture", "aws.s3", "Start Capture", "i-0a1b2c3d", "-1", "1e9"])
)
any_json = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (keys and list indexes), the root's children first."""
    found: list[tuple[Any, ...]] = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


@st.composite
def mutated_samples(draw: st.DrawFn) -> dict[str, Any]:
    """A sample event with one place replaced by any JSON, or removed."""
    event = load_event(draw(st.sampled_from(SAMPLES)))
    path = draw(st.sampled_from(_paths(event)))
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(any_json)
    return event


def _parse(raw: Any) -> Event | CaptureRejected:
    try:
        return parse_event(raw, max_duration_seconds=MAX_DURATION, expected_account="123456789012")
    except CaptureRejected as rejected:
        return rejected


def _assert_structured(rejected: CaptureRejected) -> None:
    answer = rejected.to_dict()
    assert answer["error"] == "CaptureRejected"
    assert answer["field"]
    assert answer["problems"]
    assert all(problem["field"] and problem["message"] for problem in answer["problems"])


@FUZZ
@given(raw=any_json)
def test_any_json_is_an_event_or_a_rejection_naming_a_field(raw: Any) -> None:
    result = _parse(raw)

    if isinstance(result, CaptureRejected):
        _assert_structured(result)
    else:
        assert isinstance(result, MODELS)


@FUZZ
@given(raw=mutated_samples())
def test_a_sample_event_changed_anywhere_is_a_valid_event_or_a_rejection_naming_a_field(
    raw: dict[str, Any],
) -> None:
    result = _parse(raw)

    if isinstance(result, CaptureRejected):
        _assert_structured(result)
        return
    assert isinstance(result, MODELS)
    if isinstance(result, StartCapture):
        detail = result.detail
        assert detail.duration_seconds is None or 10 <= detail.duration_seconds <= MAX_DURATION
        assert detail.filter is None or check_bpf_filter(detail.filter) == detail.filter
        assert detail.filter is None or len(detail.filter) <= MAX_FILTER_LENGTH
    assert isinstance(result, S3Notification) or result.account == "123456789012"


class Untouchable:
    """A collaborator a rejected event must never reach: any use is recorded and stops the handler."""

    class Reached(Exception):  # noqa: N818 - a signal, not an error
        """The handler got past parsing and used a collaborator."""

    def __init__(self) -> None:
        self.used: list[str] = []

    def __getattr__(self, name: str) -> Any:
        if name == "exceptions":  # boto3's modelled errors, named in except clauses
            return _ErrorClasses()

        def use(*_: Any, **__: Any) -> Any:
            self.used.append(name)
            raise Untouchable.Reached(name)

        return use

    def __call__(self, *_: Any, **__: Any) -> Any:
        self.used.append("__call__")
        raise Untouchable.Reached("__call__")


class _ErrorClasses:
    """Any error class a handler names (``client.exceptions.NoSuchKey``); none is ever raised."""

    def __getattr__(self, name: str) -> type[Exception]:
        return type(name, (Exception,), {})


def _touched(
    handle: Callable[[Any], Any], raw: Any, collaborators: list[Untouchable]
) -> CaptureRejected | None:
    """Run a handler on ``raw``: its rejection (if any), after checking nothing was touched before it."""
    try:
        handle(raw)
    except CaptureRejected as rejected:
        assert [c.used for c in collaborators] == [[]] * len(collaborators)
        return rejected
    except Untouchable.Reached:
        return None
    return None


raw_events = any_json | mutated_samples()


@FUZZ
@given(raw=raw_events)
def test_the_trigger_touches_no_table_cluster_or_bucket_for_a_rejected_event(raw: Any) -> None:
    collaborators = [Untouchable() for _ in range(6)]
    store, cluster, cloudwatch, s3, sns, ec2 = collaborators
    stack = Settings.from_env({**BASE_ENV, "EXPECTED_ACCOUNT": "123456789012"})
    aws = AwsClients(cloudwatch=cloudwatch, s3=s3, sns=sns, ec2=ec2)
    deps = Deps(settings=stack, store=store, cluster=cluster, aws=aws)  # type: ignore[arg-type]

    rejected = _touched(lambda event: trigger.handle(event, deps), raw, collaborators)

    if rejected is not None:
        _assert_structured(rejected)


@FUZZ
@given(raw=raw_events)
def test_the_indexer_touches_no_table_or_bucket_for_a_rejected_event(raw: Any) -> None:
    store, s3 = Untouchable(), Untouchable()
    fake_store: Any = store

    rejected = _touched(lambda event: indexer.handle(event, fake_store, s3), raw, [store, s3])

    if rejected is not None:
        _assert_structured(rejected)


tag_names = st.sampled_from(
    [
        "eks-capture:duration",
        "eks-capture:snaplen",
        "eks-capture:filter",
        "eks-capture:fallback",
        "eks-capture:cluster",
        "eks-capture:preset",
        "eks-capture:port",
        "eks-capture:typo",
        "team",
    ]
)


@FUZZ
@given(tags=st.dictionaries(tag_names, st.text(max_size=30) | st.integers().map(str), max_size=5))
def test_any_alarm_tags_give_options_within_the_stacks_limits_or_a_rejection_naming_the_tag(
    tags: dict[str, str],
) -> None:
    alarm = parse_event(load_event("alarm-single-metric-instance"))
    assert isinstance(alarm, AlarmStateChange)
    defaults = CaptureOptions.defaults(Settings.from_env(BASE_ENV))

    try:
        options = capture_options_for_alarm(alarm, tags, defaults, max_duration_seconds=MAX_DURATION)
    except CaptureRejected as rejected:
        bad_tag: str | None = rejected.field.removeprefix("tags.")
    else:
        bad_tag = None
    if bad_tag is not None:
        assert bad_tag in tags
        return
    assert 10 <= options.duration_seconds <= MAX_DURATION
    assert 64 <= options.snaplen <= 262144
    assert options.filter is None or check_bpf_filter(options.filter) == options.filter


settings_names = st.sampled_from(sorted(name.upper() for name in Settings.model_fields))


@FUZZ
@given(
    changes=st.dictionaries(
        settings_names, st.text(max_size=20) | st.integers(-5, 10**6).map(str), min_size=1, max_size=4
    )
)
def test_any_environment_gives_valid_settings_or_names_the_bad_variable(
    changes: dict[str, str],
) -> None:
    environ = {**BASE_ENV, **changes}

    try:
        loaded = Settings.from_env(environ)
    except SettingsInvalid as invalid:
        named: str | None = invalid.variable
    else:
        named = None
    if named is not None:  # a cross-field rule may name its other variable (DEFAULT_ vs MAX_DURATION)
        assert named.lower() in Settings.model_fields
        return
    assert loaded.default_duration_seconds <= loaded.max_duration_seconds
    assert loaded.spool_budget_bytes >= 2 * loaded.rotate_megabytes * 2**20
