"""scripts/build-image.sh, the multi-arch build and push, against stand-ins for docker, finch and aws on PATH.

No registry or Docker daemon is reachable here, so each stand-in answers as the real command does for the
case (buildx's ``inspect`` output, the build's metadata file) and records its command lines; the test reads
what the script asked for and what it printed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-image.sh"
REPOSITORY = "registry.example.com/eks-capture-agent"
ECR = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eks-capture-agent"
DIGEST = "sha256:" + "ab" * 32
BOTH = "linux/amd64, linux/amd64/v2, linux/386, linux/arm64"
AMD64_ONLY = "linux/amd64, linux/amd64/v2, linux/386"

FAKE = textwrap.dedent(
    f"""\
    #!{sys.executable}
    import json, os, sys
    from pathlib import Path
    state = Path(os.environ["FAKE_STATE"])
    args = sys.argv[1:]
    with (state / "calls").open("a") as log:
        log.write(Path(sys.argv[0]).name + " " + " ".join(args) + "\\n")
    def builder_exists(name):
        return name == "default" or (state / f"builder-{{name}}").exists()
    if args[:2] == ["buildx", "version"]:
        sys.exit(0 if os.environ.get("FAKE_BUILDX", "yes") == "yes" else 1)
    if args[:2] == ["buildx", "inspect"]:
        rest = [a for a in args[2:] if a != "--bootstrap"]
        name = rest[rest.index("--builder") + 1] if "--builder" in rest else (rest[0] if rest else "default")
        if not builder_exists(name):
            print(f"ERROR: no builder {{name!r}} found", file=sys.stderr)
            sys.exit(1)
        driver = os.environ["FAKE_DRIVER"] if name == "default" else "docker-container"
        print(f"Name:   {{name}}\\nDriver: {{driver}}\\n\\nNodes:\\nName: {{name}}0")
        if "--bootstrap" in args:
            print("Platforms: " + os.environ["FAKE_PLATFORMS"])
        sys.exit(0)
    if args[:2] == ["buildx", "create"]:
        (state / ("builder-" + args[args.index("--name") + 1])).touch()
        sys.exit(0)
    if args[:2] == ["buildx", "build"]:
        if "--metadata-file" in args:
            document = {{"containerimage.digest": os.environ["FAKE_DIGEST"], "image.name": "x"}}
            Path(args[args.index("--metadata-file") + 1]).write_text(json.dumps(document, indent=2))
        sys.exit(0)
    if args[:3] == ["buildx", "imagetools", "inspect"] or args[:2] == ["image", "inspect"]:
        print(os.environ["FAKE_DIGEST"])
        sys.exit(0)
    if args[:1] == ["login"]:
        (state / "login-password").write_text(sys.stdin.read())
        sys.exit(0)
    if args[:2] == ["ecr", "get-login-password"]:
        print("token-from-ecr")
        sys.exit(0)
    sys.exit(0)
    """
)


def run_script(
    tmp_path: Path,
    *args: str,
    driver: str = "docker",
    platforms: str = BOTH,
    tool: str = "docker",
    **env: str,
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """The script with stand-in tools first on PATH; its result and the command lines they received."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in ("docker", "finch", "aws"):
        (bin_dir / name).write_text(FAKE)
        (bin_dir / name).chmod(0o755)
    state = tmp_path / "state"
    state.mkdir(parents=True, exist_ok=True)
    environment = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "FAKE_STATE": str(state),
        "FAKE_DRIVER": driver,
        "FAKE_PLATFORMS": platforms,
        "FAKE_DIGEST": DIGEST,
        "CONTAINER_TOOL": tool,
        "HOME": os.environ.get("HOME", "/root"),
        **env,
    }
    done = subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=60)
    calls_file = state / "calls"
    return done, calls_file.read_text().splitlines() if calls_file.exists() else []


def builds(calls: list[str]) -> list[str]:
    return [call for call in calls if call.startswith("docker buildx build")]


def test_on_the_default_docker_driver_a_container_builder_is_created_and_the_digest_printed(
    tmp_path: Path,
) -> None:
    done, calls = run_script(tmp_path, REPOSITORY, "v1")

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"CaptureImageUri={REPOSITORY}@{DIGEST}"
    assert "docker buildx create --name eks-capture --driver docker-container" in calls
    [build] = builds(calls)
    assert "--builder eks-capture" in build
    assert "--platform linux/amd64,linux/arm64" in build
    assert f"--tag {REPOSITORY}:v1 --push" in build
    assert build.endswith(" capture-image")


def test_an_existing_builder_is_reused_and_a_multi_platform_driver_is_used_as_it_is(tmp_path: Path) -> None:
    first, _ = run_script(tmp_path, REPOSITORY, "v1")
    second, all_calls = run_script(tmp_path, REPOSITORY, "v2")
    own_driver, own_calls = run_script(tmp_path / "other", REPOSITORY, "v3", driver="docker-container")

    assert first.returncode == second.returncode == own_driver.returncode == 0
    creates = [call for call in all_calls if call.startswith("docker buildx create")]
    assert len(creates) == 1
    assert "--builder eks-capture" in builds(all_calls)[-1]
    assert not [call for call in own_calls if call.startswith("docker buildx create")]
    assert "--builder" not in builds(own_calls)[0]


def test_a_builder_without_the_other_arch_stops_before_building_and_says_how_to_get_it(
    tmp_path: Path,
) -> None:
    done, calls = run_script(tmp_path, REPOSITORY, "v1", platforms=AMD64_ONLY)

    assert done.returncode == 1
    assert not builds(calls)
    assert "cannot build linux/arm64" in done.stderr
    assert "docker run --privileged --rm tonistiigi/binfmt --install all" in done.stderr
    assert f"--native {REPOSITORY} v1" in done.stderr
    assert f"--join {REPOSITORY} v1" in done.stderr
    assert "CaptureImageUri" not in done.stdout


def test_native_builds_push_one_arch_each_and_join_makes_the_index(tmp_path: Path) -> None:
    native, native_calls = run_script(tmp_path, "--native", REPOSITORY, "v1", platforms=AMD64_ONLY)
    joined, join_calls = run_script(tmp_path / "join", "--join", REPOSITORY, "v1")

    assert native.returncode == 0, native.stderr
    [build] = builds(native_calls)
    assert "--platform linux/amd64 " in build
    assert f"--tag {REPOSITORY}:v1-amd64 --push" in build
    assert "CaptureImageUri" not in native.stdout
    assert joined.returncode == 0, joined.stderr
    create = (
        f"docker buildx imagetools create --tag {REPOSITORY}:v1 {REPOSITORY}:v1-amd64 {REPOSITORY}:v1-arm64"
    )
    assert create in join_calls
    assert joined.stdout.strip().splitlines()[-1] == f"CaptureImageUri={REPOSITORY}@{DIGEST}"


def test_without_buildx_the_script_says_how_to_install_it(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, REPOSITORY, "v1", FAKE_BUILDX="no")

    assert done.returncode == 1
    assert "docker-buildx-plugin" in done.stderr
    assert not builds(calls)


def test_an_ecr_repository_is_logged_in_to_with_the_regions_token(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, ECR, "v1")

    assert done.returncode == 0, done.stderr
    assert "aws ecr get-login-password --region eu-west-1" in calls
    assert f"docker login --username AWS --password-stdin {ECR.split('/')[0]}" in calls
    assert (tmp_path / "state" / "login-password").read_text().strip() == "token-from-ecr"
    assert done.stdout.strip().splitlines()[-1] == f"CaptureImageUri={ECR}@{DIGEST}"


def test_finch_builds_both_arches_at_once_and_pushes_every_platform(tmp_path: Path) -> None:
    done, calls = run_script(tmp_path, REPOSITORY, "v1", tool="finch")

    assert done.returncode == 0, done.stderr
    assert f"finch build --platform linux/amd64,linux/arm64 --tag {REPOSITORY}:v1 capture-image" in calls
    assert f"finch push --all-platforms {REPOSITORY}:v1" in calls
    assert done.stdout.strip().splitlines()[-1] == f"CaptureImageUri={REPOSITORY}@{DIGEST}"


@pytest.mark.parametrize(
    "digest", ["", "latest", "sha256:", "sha256:" + "ab" * 31], ids=["nothing", "tag", "empty", "short"]
)
@pytest.mark.parametrize("tool", ["docker", "finch"])
def test_a_push_that_reports_no_digest_fails_instead_of_printing_a_tag(
    tmp_path: Path, digest: str, tool: str
) -> None:
    done, _ = run_script(tmp_path, REPOSITORY, "v1", tool=tool, FAKE_DIGEST=digest)

    assert done.returncode == 1
    assert "CaptureImageUri" not in done.stdout


def test_the_script_is_clean_under_shellcheck() -> None:
    done = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
