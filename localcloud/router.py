"""Event routing read from template.yaml: EventBridge rules in moto, Lambda handlers in warm local processes.

Each function event of the template becomes what AWS would create: an EventBridge rule with the
template's pattern (or schedule) on the template's bus. Its target is an SQS queue standing in for the
Lambda service's async queue; the router drains those queues and invokes the handler with a
Lambda-like context, retrying a failed invocation as Lambda's async invocation does (twice, or as the
function's EventInvokeConfig MaximumRetryAttempts says). A wrong
pattern or bus in the template therefore routes nothing here, exactly as in AWS. Rules the template
declares as AWS::Events::Rule resources (e.g. one per cluster from a Fn::ForEach) are wired the same
way when their target is one of the stack's functions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from localcloud.access import function_role_arn, role_credentials
from localcloud.provision import provision
from localcloud.template import PROJECT_ROOT, Stack, TemplateError

ASYNC_ATTEMPTS = 3  # Lambda's asynchronous invocation by default: the first try and two retries.
INIT_SECONDS = (
    10.0  # Lambda's limit on a cold start's Init phase, which the function's timeout does not count
)


@dataclass(frozen=True)
class FunctionSpec:
    """A function as the template defines it, Globals merged in."""

    logical_id: str
    code_dir: Path
    handler: str
    environment: dict[str, str]
    timeout: float
    events: dict[str, dict[str, Any]]
    attempts: int = ASYNC_ATTEMPTS  # 1 + EventInvokeConfig.MaximumRetryAttempts


def function_specs(stack: Stack) -> dict[str, FunctionSpec]:
    """Every AWS::Serverless::Function of the stack, with Globals.Function applied as SAM applies them."""
    globals_ = stack.resolve(stack.template.get("Globals", {}).get("Function", {}))
    specs: dict[str, FunctionSpec] = {}
    for logical_id, resource in stack.resources_of_type("AWS::Serverless::Function").items():
        props = stack.resolve(resource["Properties"])
        environment = {
            **globals_.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        code_dir = stack.base_dir / props["CodeUri"]
        if not (code_dir / f"{props['Handler'].rsplit('.', 1)[0]}.py").is_file():
            raise TemplateError(f"{logical_id}: handler {props['Handler']} not found in {props['CodeUri']}")
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            code_dir=code_dir,
            handler=props["Handler"],
            environment={k: str(v) for k, v in environment.items()},
            timeout=float(props.get("Timeout", globals_.get("Timeout", 3))),
            events=props.get("Events", {}),
            attempts=1
            + int(props.get("EventInvokeConfig", {}).get("MaximumRetryAttempts", ASYNC_ATTEMPTS - 1)),
        )
    return specs


@dataclass
class Invocation:
    """One delivery of an event to a function, with what the handler returned or raised."""

    function: str
    rule: str
    event: dict[str, Any]
    result: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 1
    seconds: float = 0.0


class LambdaProcess:
    """A warm execution environment for one function (see localcloud.lambda_worker)."""

    def __init__(
        self, spec: FunctionSpec, environment: dict[str, str], log: Any, init_seconds: float = INIT_SECONDS
    ) -> None:
        self.spec = spec
        self.init_seconds = init_seconds
        self._environment = environment
        self._log = log
        self._process: subprocess.Popen[str] | None = None
        self._results: Any = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        read_fd, write_fd = os.pipe()
        env = {**self._environment, "LOCAL_LAMBDA_RESULT_FD": str(write_fd)}
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "localcloud.lambda_worker",
                str(self.spec.code_dir),
                self.spec.handler,
                self.spec.logical_id,
                str(self.spec.timeout),
            ],
            stdin=subprocess.PIPE,
            stdout=self._log,
            stderr=self._log,
            env=env,
            text=True,
            pass_fds=(write_fd,),
            cwd=PROJECT_ROOT,
        )
        os.close(write_fd)
        self._results = os.fdopen(read_fd, "r")

    def invoke(self, event: dict[str, Any]) -> tuple[Any, dict[str, Any] | None]:
        """Run the handler on ``event``: (result, None) or (None, Lambda-style error payload).

        As in Lambda, a cold start's Init (the handler module's import) is not counted in the function's
        timeout, up to Init's own limit; past it Lambda runs Init again within the invocation and its
        timeout, so here what Init takes past the limit is counted.
        """
        with self._lock:
            budget = self.spec.timeout
            if self._process is None or self._process.poll() is not None:
                self._start()
                started = time.monotonic()
                init = self._read_line(self.init_seconds + budget)
                budget -= max(0.0, time.monotonic() - started - self.init_seconds)
                if init is None or budget <= 0:
                    return None, self._timed_out()
                if "error" in init:
                    return None, init["error"]
            assert self._process is not None
            assert self._process.stdin is not None
            self._process.stdin.write(json.dumps({"event": event}) + "\n")
            self._process.stdin.flush()
            response = self._read_line(budget)
            if response is None:
                return None, self._timed_out()
            if "error" in response:
                return None, response["error"]
            return response["result"], None

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        """The process's next message, or None if none came within ``timeout`` seconds."""
        outcome: dict[str, Any] = {}

        def read() -> None:
            line = self._results.readline()
            outcome.update(
                json.loads(line)
                if line
                else {"error": {"errorType": "Runtime.ExitError", "errorMessage": "the process exited"}}
            )

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(timeout)
        return None if reader.is_alive() else outcome

    def _timed_out(self) -> dict[str, Any]:
        self.stop()
        return {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"Task timed out after {self.spec.timeout:.2f} seconds",
        }

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None


def _scheduled_event(rule_arn: str, region: str, account: str) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


def _with_envelope(event: dict[str, Any], account_id: str) -> dict[str, Any]:
    """The event as EventBridge delivers it: moto leaves out ``account`` on events put by PutEvents."""
    if "detail-type" in event:
        event.setdefault("account", account_id)
    return event


@dataclass
class _Route:
    function: str
    rule: str
    rule_arn: str
    queue_url: str
    schedule: str | None


@dataclass
class Router:
    """The deployed wiring of one stack in the local cloud."""

    stack: Stack
    environment: dict[str, str]
    log: Any = None
    on_invocation: Callable[[Invocation], None] | None = None
    invocations: list[Invocation] = field(default_factory=list)
    init_seconds: float = INIT_SECONDS

    def __post_init__(self) -> None:
        self.functions = function_specs(self.stack)
        self._routes: list[_Route] = []
        self._processes: dict[str, LambdaProcess] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drain_lock = threading.Lock()

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """What the function's process sees: the machine's basics, the local cloud, its execution role's
        credentials (a session named after the function, as Lambda's), then the template's variables."""
        credentials = role_credentials(
            function_role_arn(self.stack, logical_id), self.stack.name_of(logical_id)
        )
        return {**os.environ, **self.environment, **credentials, **self.functions[logical_id].environment}

    def deploy(self, create_resources: bool = True) -> None:
        """Create the stack's resources (unless done already) and one rule + target per function event
        and per rule resource targeting a function."""
        if create_resources:
            provision(self.stack)
        events = boto3.client("events", region_name=self.stack.region)
        sqs = boto3.client("sqs", region_name=self.stack.region)
        for function, rule, bus, pattern in self._rule_resources():
            arn = events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
            queue_url = sqs.create_queue(QueueName=rule)["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "lambda", "Arn": queue_arn}])
            self._routes.append(_Route(function, rule, arn["RuleArn"], queue_url, None))
        for spec in self.functions.values():
            for event_id, event in spec.events.items():
                props = event.get("Properties", {})
                rule = f"{self.stack.name}-{spec.logical_id}-{event_id}"[:64]
                bus = props.get("EventBusName", "default")
                if event["Type"] == "EventBridgeRule":
                    arn = events.put_rule(
                        Name=rule, EventBusName=bus, EventPattern=json.dumps(props["Pattern"])
                    )
                    schedule = None
                elif event["Type"] in {"Schedule", "ScheduleV2"}:
                    schedule = props.get("Schedule") or props.get("ScheduleExpression")
                    arn = events.put_rule(Name=rule, ScheduleExpression=schedule)
                else:
                    raise TemplateError(
                        f"{spec.logical_id}.{event_id}: event type {event['Type']} not modelled"
                    )
                queue_url = sqs.create_queue(QueueName=rule)["QueueUrl"]
                queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
                    "Attributes"
                ]["QueueArn"]
                if schedule is None:
                    # moto matches a schedule rule against every event on its bus (AWS never does), so
                    # schedules get no target there: fire_schedule delivers their events instead.
                    events.put_targets(
                        Rule=rule, EventBusName=bus, Targets=[{"Id": "lambda", "Arn": queue_arn}]
                    )
                self._routes.append(_Route(spec.logical_id, rule, arn["RuleArn"], queue_url, schedule))
            self._processes[spec.logical_id] = LambdaProcess(
                spec, self.function_environment(spec.logical_id), self.log, self.init_seconds
            )

    def _rule_resources(self) -> list[tuple[str, str, str, dict[str, Any]]]:
        """(function, rule name, bus, pattern) of each AWS::Events::Rule resource targeting a function."""
        function_arns = {self.stack.arn(logical_id): logical_id for logical_id in self.functions}
        wired = []
        for logical_id, resource in self.stack.resources_of_type("AWS::Events::Rule").items():
            if "Condition" in resource and not self.stack.condition(resource["Condition"]):
                continue
            props = self.stack.resolve(resource["Properties"])
            if "EventPattern" not in props:
                raise TemplateError(f"{logical_id}: only event-pattern rules are modelled")
            bus = props.get("EventBusName", "default")
            for target in props.get("Targets", []):
                if target["Arn"] not in function_arns:
                    raise TemplateError(
                        f"{logical_id}: target {target['Arn']} is not a function of the stack"
                    )
                wired.append(
                    (function_arns[target["Arn"]], self.stack.name_of(logical_id), bus, props["EventPattern"])
                )
        return wired

    def fire_schedule(self, logical_id: str) -> None:
        """Deliver the Scheduled Event that EventBridge sends when a function's schedule comes due."""
        sqs = boto3.client("sqs", region_name=self.stack.region)
        routes = [r for r in self._routes if r.function == logical_id and r.schedule]
        if not routes:
            raise TemplateError(f"{logical_id} has no schedule in the template")
        for route in routes:
            event = _scheduled_event(route.rule_arn, self.stack.region, self.stack.account_id)
            sqs.send_message(QueueUrl=route.queue_url, MessageBody=json.dumps(event))

    def invoke(self, logical_id: str, event: dict[str, Any], rule: str = "direct") -> Invocation:
        """Invoke a function with Lambda's async retry semantics."""
        process = self._processes[logical_id]
        started = time.monotonic()
        invocation = Invocation(function=logical_id, rule=rule, event=event)
        for attempt in range(1, self.functions[logical_id].attempts + 1):
            invocation.attempts = attempt
            invocation.result, invocation.error = process.invoke(event)
            if invocation.error is None:
                break
        invocation.seconds = time.monotonic() - started
        self.invocations.append(invocation)
        if self.on_invocation is not None:
            self.on_invocation(invocation)
        return invocation

    def drain(self, settle_seconds: float = 0.0) -> list[Invocation]:
        """Deliver every queued event until the queues stay empty for ``settle_seconds``."""
        sqs = boto3.client("sqs", region_name=self.stack.region)
        delivered: list[Invocation] = []
        with self._drain_lock:
            quiet_since = time.monotonic()
            while True:
                moved = False
                for route in self._routes:
                    messages = sqs.receive_message(QueueUrl=route.queue_url, MaxNumberOfMessages=10).get(
                        "Messages", []
                    )
                    for message in messages:
                        moved = True
                        event = _with_envelope(json.loads(message["Body"]), self.stack.account_id)
                        delivered.append(self.invoke(route.function, event, route.rule))
                        sqs.delete_message(QueueUrl=route.queue_url, ReceiptHandle=message["ReceiptHandle"])
                if moved:
                    quiet_since = time.monotonic()
                elif time.monotonic() - quiet_since >= settle_seconds:
                    return delivered
                else:
                    time.sleep(0.05)

    def start(self, poll_seconds: float = 0.2) -> None:
        """Route in the background, as AWS does, until ``stop`` (again after a ``stop``)."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.drain()
                self._stop.wait(poll_seconds)

        self._thread = threading.Thread(target=loop, name="router", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for process in self._processes.values():
            process.stop()
