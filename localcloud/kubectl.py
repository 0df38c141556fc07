"""Debian's kubectl against the local cluster: an independent client for set-up (apply) and assertions."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localcloud.template import PROJECT_ROOT

MANIFESTS_DIR = PROJECT_ROOT / "deploy" / "kubernetes"
KUBECTL_TIMEOUT_SECONDS = 60


class KubectlError(RuntimeError):
    """kubectl exited non-zero; the message is its own stderr."""


@dataclass(frozen=True)
class Kubectl:
    """``kubectl`` with one kubeconfig and its own discovery cache (never the user's ~/.kube)."""

    kubeconfig: Path
    cache_dir: Path

    def run(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run kubectl; the completed process whatever its exit code (``auth can-i`` answers with it)."""
        binary = shutil.which("kubectl")
        if binary is None:
            raise KubectlError("kubectl is not installed (apt-get install kubectl)")
        return subprocess.run(
            [binary, "--kubeconfig", str(self.kubeconfig), "--cache-dir", str(self.cache_dir), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=KUBECTL_TIMEOUT_SECONDS,
            check=False,
        )

    def check(self, *args: str, stdin: str | None = None) -> str:
        """Run kubectl; its stdout, or KubectlError with its stderr when it fails."""
        done = self.run(*args, stdin=stdin)
        if done.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def apply(self, manifests: str | Path = MANIFESTS_DIR) -> str:
        """``kubectl apply -f`` a folder or file, or manifests given as YAML text."""
        if isinstance(manifests, Path):
            return self.check("apply", "-f", str(manifests))
        return self.check("apply", "-f", "-", stdin=manifests)
