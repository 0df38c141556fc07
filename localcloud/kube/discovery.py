"""Discovery and OpenAPI: what a client such as kubectl reads before its first real request.

The legacy (unaggregated) discovery documents: ``/api``, ``/apis``, ``/apis/<group>`` and each group
version's ``APIResourceList``. kubectl asks for aggregated discovery first and falls back to these
when the answer is plain JSON. OpenAPI v3 is served per group version with one PATCH operation per
kind that takes the ``fieldValidation`` query parameter: that is how kubectl (cli-runtime's
QueryParamVerifierV3) learns the server validates fields itself, so it skips client-side schema
validation. The PATCH operations list no strategic-merge body, so ``kubectl apply`` computes its patch
from its built-in types, as it does for a kind the OpenAPI does not describe.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from localcloud.kube.resources import ALL, SUBRESOURCES, ResourceType

SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "log": ["get"]}
CATEGORY_ALL = {"pods", "services", "daemonsets", "jobs"}


def _group_versions() -> dict[str, list[ResourceType]]:
    """``v1`` or ``<group>/<version>`` -> the resources served there, in declaration order."""
    served: dict[str, list[ResourceType]] = {}
    for rtype in ALL:
        served.setdefault(rtype.api_version, []).append(rtype)
    return served


def _resource_entries(rtype: ResourceType) -> list[dict[str, Any]]:
    entry: dict[str, Any] = {
        "name": rtype.plural,
        "singularName": rtype.singular,
        "namespaced": rtype.namespaced,
        "kind": rtype.kind,
        "verbs": list(rtype.verbs),
    }
    if rtype.short_names:
        entry["shortNames"] = list(rtype.short_names)
    if rtype.plural in CATEGORY_ALL:
        entry["categories"] = ["all"]
    entries = [entry]
    for subresource in sorted(SUBRESOURCES.get(rtype.plural, ())):
        entries.append(
            {
                "name": f"{rtype.plural}/{subresource}",
                "singularName": "",
                "namespaced": rtype.namespaced,
                "kind": rtype.kind,
                "verbs": SUBRESOURCE_VERBS[subresource],
            }
        )
    return entries


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{version}", "version": version} for version in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def discovery_document(path: str) -> dict[str, Any] | None:
    """The discovery answer for ``path`` (``/api``, ``/apis``, ``/api/v1``, ``/apis/<g>[/<v>]``), or None."""
    served = _group_versions()
    parts = [part for part in path.split("/") if part]
    if parts == ["api"]:
        return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    groups: dict[str, list[str]] = {}
    for group_version in served:
        if "/" in group_version:
            group, version = group_version.split("/")
            groups.setdefault(group, []).append(version)
    if parts == ["apis"]:
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in groups.items()],
        }
    if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    group_version = "v1" if parts == ["api", "v1"] else "/".join(parts[1:]) if parts[:1] == ["apis"] else ""
    if group_version in served:
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": group_version,
            "resources": [entry for rtype in served[group_version] for entry in _resource_entries(rtype)],
        }
    return None


def _openapi_paths(rtype: ResourceType) -> dict[str, Any]:
    """The named path of a resource with a PATCH operation that names its kind and takes fieldValidation."""
    prefix = "/api/v1" if not rtype.group else f"/apis/{rtype.api_version}"
    scope = "/namespaces/{namespace}" if rtype.namespaced else ""
    gvk = {"group": rtype.group, "version": rtype.version, "kind": rtype.kind}
    body = {"schema": {"type": "object"}}
    patch = {
        "operationId": f"patch{rtype.kind}",
        "x-kubernetes-action": "patch",
        "x-kubernetes-group-version-kind": gvk,
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
        ],
        "requestBody": {
            "content": {"application/merge-patch+json": body, "application/json-patch+json": body},
            "required": True,
        },
        "responses": {"200": {"description": "OK", "content": {"application/json": body}}},
    }
    return {f"{prefix}{scope}/{rtype.plural}/{{name}}": {"patch": patch}}


def _openapi_v3_document(group_version: str) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rtype in _group_versions()[group_version]:
        if rtype.stored:
            paths.update(_openapi_paths(rtype))
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.33.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _openapi_key(group_version: str) -> str:
    return "api/v1" if group_version == "v1" else f"apis/{group_version}"


def _hash(document: dict[str, Any]) -> str:
    return hashlib.sha512(json.dumps(document, sort_keys=True).encode()).hexdigest()[:128].upper()


def openapi_v3(path: str) -> dict[str, Any] | None:
    """``/openapi/v3`` (the index of group versions, each with its hashed URL) or one group version's doc."""
    if path.rstrip("/") == "/openapi/v3":
        index = {}
        for group_version in _group_versions():
            key = _openapi_key(group_version)
            document = _openapi_v3_document(group_version)
            index[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={_hash(document)}"}
        return {"paths": index}
    for group_version in _group_versions():
        if path.rstrip("/") == f"/openapi/v3/{_openapi_key(group_version)}":
            return _openapi_v3_document(group_version)
    return None
