"""Pod Security admission: the namespace's ``pod-security.kubernetes.io/enforce`` level, checked as
k8s.io/pod-security-admission checks it, refused in its words; and its ``warn`` level, answered with a
``would violate PodSecurity "<level>:<version>": ...`` warning for a pod the enforce level admits and for
the pod template of a Job or DaemonSet (which the enforce level never refuses). The ``audit`` level is not
modelled: it only annotates the audit log's event, and this API server keeps no audit log.

The checks are the ones a capture or recorder pod can meet (host namespaces, host ports, privileged,
capabilities, hostPath and other volume types, privilege escalation, runAsNonRoot, runAsUser=0,
seccomp). They run in the real evaluator's order: the baseline checks, then either the overlapping
baseline checks (baseline) or the restricted ones (restricted), each group in the order of its source
files, so a refusal names the same violations in the same order as a real API server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
LEVELS = ("privileged", "baseline", "restricted")
ENFORCE_LABEL = "pod-security.kubernetes.io/enforce"
ENFORCE_VERSION_LABEL = "pod-security.kubernetes.io/enforce-version"
WARN_LABEL = "pod-security.kubernetes.io/warn"
WARN_VERSION_LABEL = "pod-security.kubernetes.io/warn-version"
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
RESTRICTED_VOLUME_SOURCES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
SECCOMP_ALLOWED = ("Localhost", "RuntimeDefault")
_VERSION = re.compile(r"^(latest|v1\.(0|[1-9][0-9]*))$")


@dataclass(frozen=True)
class Violation:
    """One failed check: its short reason (always shown) and its detail (shown in parentheses)."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


Check = Callable[[Obj], Violation | None]


def _join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, then containers, as the real visitor walks them."""
    yield from spec.get("initContainers") or []
    yield from spec.get("containers") or []


def _context(container: Obj) -> Obj:
    return container.get("securityContext") or {}


def _containers_named(spec: Obj, bad: Callable[[Obj], bool]) -> list[str]:
    return [str(c.get("name", "")) for c in _containers(spec) if bad(c)]


# baseline ----------------------------------------------------------------------------------------
def host_namespaces(spec: Obj) -> Violation | None:
    shared = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field)]
    return Violation("host namespaces", ", ".join(shared)) if shared else None


def host_ports(spec: Obj) -> Violation | None:
    ports: set[str] = set()
    bad = []
    for container in _containers(spec):
        used = {str(p["hostPort"]) for p in container.get("ports") or [] if p.get("hostPort")}
        if used:
            bad.append(str(container.get("name", "")))
            ports |= used
    if not bad:
        return None
    return Violation(
        "hostPort",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
        f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
        f"{', '.join(sorted(ports))}",
    )


def privileged(spec: Obj) -> Violation | None:
    bad = _containers_named(spec, lambda c: _context(c).get("privileged") is True)
    if not bad:
        return None
    return Violation(
        "privileged",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not set "
        "securityContext.privileged=true",
    )


def capabilities_baseline(spec: Obj) -> Violation | None:
    added: set[str] = set()
    bad = []
    for container in _containers(spec):
        extra = {
            str(c)
            for c in (_context(container).get("capabilities") or {}).get("add") or []
            if c not in BASELINE_CAPABILITIES
        }
        if extra:
            bad.append(str(container.get("name", "")))
            added |= extra
    if not bad:
        return None
    return Violation(
        "non-default capabilities",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not include "
        f"{_join_quote(sorted(added))} in securityContext.capabilities.add",
    )


def host_path_volumes(spec: Obj) -> Violation | None:
    names = [str(v.get("name", "")) for v in spec.get("volumes") or [] if "hostPath" in v]
    if not names:
        return None
    return Violation("hostPath volumes", f"{_plural('volume', 'volumes', len(names))} {_join_quote(names)}")


def _seccomp_setters(spec: Obj) -> tuple[list[str], set[str], bool, list[str]]:
    """Who sets a bad seccomp type (and which), whether the pod sets a good one, who sets none."""
    setters: list[str] = []
    values: set[str] = set()
    pod_profile = (spec.get("securityContext") or {}).get("seccompProfile")
    pod_set = False
    if pod_profile is not None:
        if pod_profile.get("type") in SECCOMP_ALLOWED:
            pod_set = True
        else:
            setters.append("pod")
            values.add(str(pod_profile.get("type", "")))
    explicit, implicit = [], []
    for container in _containers(spec):
        profile = _context(container).get("seccompProfile")
        if profile is None:
            implicit.append(str(container.get("name", "")))
        elif profile.get("type") not in SECCOMP_ALLOWED:
            explicit.append(str(container.get("name", "")))
            values.add(str(profile.get("type", "")))
    if explicit:
        setters.append(f"{_plural('container', 'containers', len(explicit))} {_join_quote(explicit)}")
    return setters, values, pod_set, implicit


def seccomp_baseline(spec: Obj) -> Violation | None:
    setters, values, _, _ = _seccomp_setters(spec)
    if not setters:
        return None
    return Violation(
        "seccompProfile",
        f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
        f"{_join_quote(sorted(values))}",
    )


# restricted --------------------------------------------------------------------------------------
def allow_privilege_escalation(spec: Obj) -> Violation | None:
    bad = _containers_named(spec, lambda c: _context(c).get("allowPrivilegeEscalation") is not False)
    if not bad:
        return None
    return Violation(
        "allowPrivilegeEscalation != false",
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must set "
        "securityContext.allowPrivilegeEscalation=false",
    )


def capabilities_restricted(spec: Obj) -> Violation | None:
    missing_drop, adding = [], []
    added: set[str] = set()
    for container in _containers(spec):
        name = str(container.get("name", ""))
        capabilities = _context(container).get("capabilities")
        if capabilities is None:
            missing_drop.append(name)
            continue
        if "ALL" not in (capabilities.get("drop") or []):
            missing_drop.append(name)
        extra = {str(c) for c in capabilities.get("add") or [] if c != "NET_BIND_SERVICE"}
        if extra:
            adding.append(name)
            added |= extra
    details = []
    if missing_drop:
        details.append(
            f"{_plural('container', 'containers', len(missing_drop))} {_join_quote(missing_drop)} must set "
            'securityContext.capabilities.drop=["ALL"]'
        )
    if adding:
        details.append(
            f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} must not include "
            f"{_join_quote(sorted(added))} in securityContext.capabilities.add"
        )
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


def restricted_volumes(spec: Obj) -> Violation | None:
    names = sorted(
        {str(v.get("name", "")) for v in spec.get("volumes") or [] if not RESTRICTED_VOLUME_SOURCES & set(v)}
    )
    if not names:
        return None
    quoted = " ".join(f'"{name}"' for name in names)  # Go's %q of a []string
    return Violation("restricted volume types", f"volumes [{quoted}] have restricted types")


def run_as_non_root(spec: Obj) -> Violation | None:
    setters: list[str] = []
    pod_value = (spec.get("securityContext") or {}).get("runAsNonRoot")
    if pod_value is False:
        setters.append("pod")
    explicit, implicit = [], []
    for container in _containers(spec):
        value = _context(container).get("runAsNonRoot")
        if value is False:
            explicit.append(str(container.get("name", "")))
        elif value is None and pod_value is not True:
            implicit.append(str(container.get("name", "")))
    if explicit:
        setters.append(f"{_plural('container', 'containers', len(explicit))} {_join_quote(explicit)}")
    if setters:
        return Violation(
            "runAsNonRoot != true", f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false"
        )
    if implicit:
        return Violation(
            "runAsNonRoot != true",
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} must set "
            "securityContext.runAsNonRoot=true",
        )
    return None


def run_as_user(spec: Obj) -> Violation | None:
    setters = ["pod"] if (spec.get("securityContext") or {}).get("runAsUser") == 0 else []
    bad = _containers_named(spec, lambda c: _context(c).get("runAsUser") == 0)
    if bad:
        setters.append(f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)}")
    return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


def seccomp_restricted(spec: Obj) -> Violation | None:
    setters, values, pod_set, implicit = _seccomp_setters(spec)
    if setters:
        return Violation(
            "seccompProfile",
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}",
        )
    if implicit and not pod_set:
        return Violation(
            "seccompProfile",
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} must set "
            'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"',
        )
    return None


BASELINE: tuple[Check, ...] = (host_namespaces, host_ports, privileged)
OVERLAPPING_BASELINE: tuple[Check, ...] = (capabilities_baseline, host_path_volumes, seccomp_baseline)
RESTRICTED: tuple[Check, ...] = (
    allow_privilege_escalation,
    capabilities_restricted,
    restricted_volumes,
    run_as_non_root,
    run_as_user,
    seccomp_restricted,
)


@dataclass(frozen=True)
class Policy:
    """A namespace's enforced level and version (``restricted:latest``)."""

    level: str
    version: str

    def __str__(self) -> str:
        return f"{self.level}:{self.version}"


def enforced_policy(namespace_labels: Mapping[str, str] | None) -> Policy:
    """The enforce level and version the labels ask for: no label is privileged, and a label that does not
    parse is ``restricted`` / ``latest`` (the real plugin fails closed on enforce)."""
    labels = namespace_labels or {}
    level = labels.get(ENFORCE_LABEL, "privileged")
    version = labels.get(ENFORCE_VERSION_LABEL, "latest")
    return Policy(
        level if level in LEVELS else "restricted", version if _VERSION.match(version) else "latest"
    )


def warned_policy(namespace_labels: Mapping[str, str] | None) -> Policy:
    """The warn level and version: no label, or one that does not parse, is privileged (warn fails open)."""
    labels = namespace_labels or {}
    level = labels.get(WARN_LABEL, "privileged")
    version = labels.get(WARN_VERSION_LABEL, "latest")
    return Policy(
        level if level in LEVELS else "privileged", version if _VERSION.match(version) else "latest"
    )


def violations(level: str, spec: Obj) -> list[Violation]:
    """Every check of ``level`` the pod spec fails, in the evaluator's order."""
    if level == "privileged":
        return []
    checks = BASELINE + (OVERLAPPING_BASELINE if level == "baseline" else RESTRICTED)
    return [found for check in checks if (found := check(spec)) is not None]


def refusal(namespace_labels: Mapping[str, str] | None, spec: Obj) -> str | None:
    """``violates PodSecurity "restricted:latest": ...`` when the pod breaks the enforced level."""
    policy = enforced_policy(namespace_labels)
    found = violations(policy.level, spec)
    if not found:
        return None
    return f'violates PodSecurity "{policy}": ' + ", ".join(str(v) for v in found)


def warning(namespace_labels: Mapping[str, str] | None, spec: Obj) -> str | None:
    """``would violate PodSecurity "restricted:latest": ...`` when the pod (or pod template) breaks the
    namespace's warn level; None when it does not, or when no warn level is set."""
    policy = warned_policy(namespace_labels)
    found = violations(policy.level, spec)
    if not found:
        return None
    return f'would violate PodSecurity "{policy}": ' + ", ".join(str(v) for v in found)
