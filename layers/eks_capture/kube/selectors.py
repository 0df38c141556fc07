"""Kubernetes label selectors (matchLabels / matchExpressions) as validated models that match label sets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from eks_capture.kube.names import dns1123_label_error, label_key_error, label_value_error

MAX_SELECTOR_TERMS = 20


def _check_key(key: str) -> str:
    if problem := label_key_error(key):
        raise ValueError(problem)
    return key


def _check_value(value: str) -> str:
    if problem := label_value_error(value):
        raise ValueError(problem)
    return value


class LabelSelectorRequirement(BaseModel):
    """One matchExpressions term: ``key`` ``operator`` ``values``, exactly as Kubernetes spells it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: tuple[str, ...] = Field(default=(), max_length=MAX_SELECTOR_TERMS)

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        return _check_key(key)

    @field_validator("values")
    @classmethod
    def _values(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            _check_value(value)
        return values

    @model_validator(mode="after")
    def _operator_fits_values(self) -> Self:
        if self.operator in ("In", "NotIn") and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if self.operator in ("Exists", "DoesNotExist") and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies this term, with Kubernetes' semantics."""
        present = self.key in labels
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        if self.operator == "In":
            return present and labels[self.key] in self.values
        return not present or labels[self.key] not in self.values

    def to_selector_string(self) -> str:
        """The term in the API's ``labelSelector`` query syntax."""
        if self.operator == "Exists":
            return self.key
        if self.operator == "DoesNotExist":
            return f"!{self.key}"
        verb = "in" if self.operator == "In" else "notin"
        return f"{self.key} {verb} ({','.join(self.values)})"


class LabelSelector(BaseModel):
    """A node label selector; all terms must match (an empty selector is refused: use ``all``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    match_labels: dict[str, str] = Field(
        default_factory=dict, alias="matchLabels", max_length=MAX_SELECTOR_TERMS
    )
    match_expressions: tuple[LabelSelectorRequirement, ...] = Field(
        default=(), alias="matchExpressions", max_length=MAX_SELECTOR_TERMS
    )

    @field_validator("match_labels")
    @classmethod
    def _labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key, value in labels.items():
            _check_key(key)
            _check_value(value)
        return labels

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("a selector needs matchLabels or matchExpressions")
        return self

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether a label set satisfies every term."""
        return all(labels.get(key) == value for key, value in self.match_labels.items()) and all(
            term.matches(labels) for term in self.match_expressions
        )

    def to_selector_string(self) -> str:
        """The selector in the API's ``labelSelector`` query syntax, for a server-side list."""
        terms = [f"{key}={value}" for key, value in sorted(self.match_labels.items())]
        terms += [term.to_selector_string() for term in self.match_expressions]
        return ",".join(terms)


class PodSelector(LabelSelector):
    """Pods in one namespace by labels; the capture runs on the nodes that host them."""

    namespace: str

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, namespace: str) -> str:
        if problem := dns1123_label_error(namespace):
            raise ValueError(problem)
        return namespace
