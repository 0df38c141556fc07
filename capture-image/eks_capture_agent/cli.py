"""The agent's command line: ``capture``, ``upload``, and the recorder's ``record`` and ``recorder``
(see docs/design.md and capture-image/README.md)."""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from aws_lambda_powertools import Logger

from eks_capture_agent.capture import CaptureRequest, run_capture
from eks_capture_agent.compression import DEFAULT_LEVELS, Codec, Compression
from eks_capture_agent.identity import Identity, SettingError, identity_from_env
from eks_capture_agent.logs import agent_logger
from eks_capture_agent.manifest import UploadTarget
from eks_capture_agent.rotation import minimum_budget
from eks_capture_agent.tcpdump import CaptureSettings

EXIT_UNEXPECTED = 1
EXIT_USAGE = 2
BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
MAX_SNAPLEN = 262144
RECORD_SNAPLEN = 128  # the recorder keeps headers only unless asked for more


class _Parser(argparse.ArgumentParser):
    """Reports a bad flag as a SettingError (a JSON log line and exit 2) instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise SettingError("arguments", message)


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from error
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value} must be {bound}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from error
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must not be negative")
    return value


def build_parser() -> argparse.ArgumentParser:
    """Both roles' flags, with their defaults."""
    parser = _Parser(prog="python -m eks_capture_agent", description=__doc__)
    roles = parser.add_subparsers(dest="role", required=True, parser_class=_Parser)
    capture = roles.add_parser("capture", help="run tcpdump into the spool for the duration")
    capture.add_argument("--spool", type=Path, required=True, help="directory shared with the upload role")
    capture.add_argument("--interface", default="any", help="tcpdump -i (default: any)")
    capture.add_argument("--duration", type=_int_at_least(1), required=True, help="seconds to capture")
    capture.add_argument(
        "--snaplen", type=_int_at_least(1, MAX_SNAPLEN), default=MAX_SNAPLEN, help="tcpdump -s"
    )
    capture.add_argument(
        "--rotate-seconds", type=_int_at_least(1), default=60, help="tcpdump -G (default 60)"
    )
    capture.add_argument(
        "--rotate-megabytes",
        type=_int_at_least(0),
        default=100,
        help="tcpdump -C in 10^6 bytes; 0 = time only",
    )
    capture.add_argument("--filter", default="", help="BPF filter, passed to tcpdump as one argument")
    capture.add_argument(
        "--buffer-kib", type=_int_at_least(64), default=8192, help="tcpdump -B (default 8192)"
    )
    capture.add_argument("--tcpdump", default="tcpdump", help="tcpdump binary (default: tcpdump on PATH)")
    capture.add_argument(
        "--budget-bytes",
        type=_int_at_least(1),
        default=None,
        help="the upload role's spool budget: no file starts without room for it (default: no limit)",
    )

    upload = roles.add_parser("upload", help="ship closed files from the spool to S3")
    upload.add_argument("--spool", type=Path, required=True, help="directory shared with the capture role")
    upload.add_argument("--bucket", required=True, help="capture bucket")
    upload.add_argument(
        "--prefix", required=True, help="key prefix ending in '/': captures/<cluster>/<id>/<node>/"
    )
    upload.add_argument(
        "--budget-bytes", type=_int_at_least(1), default=1 << 30, help="spool byte budget (1 GiB)"
    )
    upload.add_argument(
        "--grace-seconds", type=_seconds, default=25.0, help="time to finish after SIGTERM (25)"
    )
    upload.add_argument(
        "--compression", type=Codec, choices=list(Codec), default=Codec.ZSTD, help="default zstd"
    )
    upload.add_argument("--compression-level", type=int, default=None, help="zstd 1-19 (1), gzip 1-9 (6)")
    upload.add_argument("--poll-seconds", type=_seconds, default=0.5, help="spool check interval (0.5)")
    upload.add_argument(
        "--marker-wait-seconds",
        type=_seconds,
        default=60.0,
        help="how long past the capture's planned end to wait for its completion marker (60)",
    )
    _add_recorder_roles(roles)
    return parser


def _add_recorder_roles(roles: Any) -> None:
    """``record``: tcpdump into the ring until SIGTERM; ``recorder``: keep the ring, upload asked windows."""
    record = roles.add_parser("record", help="run tcpdump into the recorder's ring until stopped")
    record.add_argument("--spool", type=Path, required=True, help="the ring's directory")
    record.add_argument("--interface", default="any", help="tcpdump -i (default: any)")
    record.add_argument(
        "--snaplen", type=_int_at_least(1, MAX_SNAPLEN), default=RECORD_SNAPLEN, help="headers only (128)"
    )
    record.add_argument("--rotate-seconds", type=_int_at_least(1), default=10, help="tcpdump -G (10)")
    record.add_argument("--rotate-megabytes", type=_int_at_least(0), default=8, help="tcpdump -C (8)")
    record.add_argument("--filter", default="", help="BPF filter, passed to tcpdump as one argument")
    record.add_argument("--buffer-kib", type=_int_at_least(64), default=8192, help="tcpdump -B (8192)")
    record.add_argument("--tcpdump", default="tcpdump", help="tcpdump binary (default: tcpdump on PATH)")
    record.add_argument(
        "--budget-bytes",
        type=_int_at_least(1),
        default=None,
        help="the recorder role's ring budget: no file starts without room for it (default: no limit)",
    )

    recorder = roles.add_parser("recorder", help="keep the ring within its budget; upload asked windows")
    recorder.add_argument("--spool", type=Path, required=True, help="the ring's directory")
    recorder.add_argument("--bucket", required=True, help="capture bucket")
    recorder.add_argument(
        "--request-file", type=Path, required=True, help="downward-API file of the pod's annotations"
    )
    recorder.add_argument("--ring-minutes", type=_seconds, default=10.0, help="age limit of the ring (10)")
    recorder.add_argument(
        "--budget-bytes", type=_int_at_least(1), default=1 << 30, help="ring byte budget (1 GiB)"
    )
    recorder.add_argument(
        "--compression", type=Codec, choices=list(Codec), default=Codec.ZSTD, help="default zstd"
    )
    recorder.add_argument("--compression-level", type=int, default=None, help="zstd 1-19 (1), gzip 1-9 (6)")
    recorder.add_argument("--poll-seconds", type=_seconds, default=1.0, help="request check interval (1)")
    recorder.add_argument(
        "--settle-seconds",
        type=_seconds,
        default=15.0,
        help="past a window's end, how long the open file may take to rotate before it is copied (15)",
    )
    recorder.add_argument(
        "--grace-seconds", type=_seconds, default=25.0, help="time to finish windows after SIGTERM (25)"
    )


def _spool(path: Path) -> Path:
    if not path.is_dir():
        raise SettingError("--spool", f"{path} is not a directory")
    return path


def _run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    logger = agent_logger(args.role)
    if args.role in ("record", "recorder"):
        return _run_recorder_role(args, environ, logger)
    identity = identity_from_env(environ)
    logger.append_keys(**identity.log_keys())
    if args.role == "capture":
        settings = CaptureSettings(
            interface=args.interface,
            filter=args.filter,
            snaplen=args.snaplen,
            rotate_seconds=args.rotate_seconds,
            rotate_megabytes=args.rotate_megabytes,
            buffer_kib=args.buffer_kib,
        )
        request = CaptureRequest(_spool(args.spool), args.duration, settings, args.tcpdump, args.budget_bytes)
        _check_budget(request)
        return run_capture(request, identity, logger)
    return _run_upload(args, identity, logger)


def _check_budget(request: CaptureRequest) -> None:
    """A budget needs size rotation (else a file has no largest size to reserve) and room for two files."""
    if request.budget_bytes is None:
        return
    if request.settings.rotate_megabytes == 0:
        raise SettingError("--budget-bytes", "needs --rotate-megabytes of at least 1")
    smallest = minimum_budget(request.rotation)
    if request.budget_bytes < smallest:
        raise SettingError(
            "--budget-bytes",
            f"{request.budget_bytes} cannot hold the file being uploaded and the file being written"
            f" ({smallest} bytes with --rotate-megabytes {request.settings.rotate_megabytes})",
        )


def _run_upload(args: argparse.Namespace, identity: Identity, logger: Logger) -> int:
    # boto3 is imported here so the capture role never pays its memory.
    from eks_capture_agent.s3client import s3_client
    from eks_capture_agent.upload import Uploader, UploadRequest

    if not BUCKET.match(args.bucket):
        raise SettingError("--bucket", f"{args.bucket!r} is not a valid S3 bucket name")
    if args.prefix.startswith("/") or (args.prefix and not args.prefix.endswith("/")):
        raise SettingError("--prefix", f"{args.prefix!r} must not start with '/' and must end with '/'")
    level = args.compression_level if args.compression_level is not None else DEFAULT_LEVELS[args.compression]
    try:
        Compression(args.compression, level)
    except ValueError as error:
        raise SettingError("--compression-level", str(error)) from error
    target = UploadTarget(args.bucket, args.prefix, args.compression.value, level, args.budget_bytes)
    request = UploadRequest(
        _spool(args.spool), target, args.grace_seconds, args.poll_seconds, args.marker_wait_seconds
    )
    return Uploader(request, identity, s3_client(), logger).run()


def _run_recorder_role(args: argparse.Namespace, environ: Mapping[str, str], logger: Logger) -> int:
    from eks_capture_agent.recorder import RECORD_FOREVER_SECONDS, RECORDER_CAPTURE_ID

    node = identity_from_env({**environ, "CAPTURE_ID": RECORDER_CAPTURE_ID})
    logger.append_keys(cluster=node.cluster, node=node.node)
    if args.role == "record":
        settings = CaptureSettings(
            interface=args.interface,
            filter=args.filter,
            snaplen=args.snaplen,
            rotate_seconds=args.rotate_seconds,
            rotate_megabytes=args.rotate_megabytes,
            buffer_kib=args.buffer_kib,
        )
        request = CaptureRequest(
            _spool(args.spool), RECORD_FOREVER_SECONDS, settings, args.tcpdump, args.budget_bytes
        )
        _check_budget(request)
        return run_capture(request, node, logger)
    from eks_capture_agent.recorder import Recorder, RecorderRequest
    from eks_capture_agent.s3client import s3_client

    if not BUCKET.match(args.bucket):
        raise SettingError("--bucket", f"{args.bucket!r} is not a valid S3 bucket name")
    level = args.compression_level if args.compression_level is not None else DEFAULT_LEVELS[args.compression]
    try:
        Compression(args.compression, level)
    except ValueError as error:
        raise SettingError("--compression-level", str(error)) from error
    if args.ring_minutes <= 0:
        raise SettingError("--ring-minutes", "must be more than 0")
    recorder_request = RecorderRequest(
        spool=_spool(args.spool),
        bucket=args.bucket,
        request_file=args.request_file,
        ring_seconds=args.ring_minutes * 60,
        budget_bytes=args.budget_bytes,
        codec=args.compression.value,
        level=level,
        poll_seconds=args.poll_seconds,
        settle_seconds=args.settle_seconds,
        grace_seconds=args.grace_seconds,
    )
    return Recorder(recorder_request, node, s3_client(), logger).run()


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Parse, validate, run one role; exit codes are listed in capture-image/README.md."""
    try:
        args = build_parser().parse_args(argv)
        return _run(args, os.environ if environ is None else environ)
    except SettingError as error:
        agent_logger("startup").error("invalid setting", extra={"field": error.field, "error": error.problem})
        return EXIT_USAGE
    except Exception:
        agent_logger("startup").exception("unexpected failure")
        return EXIT_UNEXPECTED
