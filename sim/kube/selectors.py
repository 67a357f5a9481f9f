"""Kubernetes label selectors (``metav1.LabelSelector``), evaluated against a label map.

Webhook configurations choose namespaces and objects with these selectors, and namespace
exclusion is the behaviour under test, so the semantics must be Kubernetes' exactly:
``matchLabels`` and every ``matchExpressions`` requirement are ANDed; ``None`` and ``{}``
select everything; ``In``/``NotIn`` need at least one value; ``Exists``/``DoesNotExist``
must have none. ``NotIn`` and ``DoesNotExist`` also select objects *without* the key, which
is what lets a namespace without a label escape an exclusion list.

Hand-written because it is small and no maintained Python library implements it; an
invalid selector is a user's mistake and raises :class:`SelectorError` naming ``where``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sim.bounds import excerpt
from sim.errors import ConformanceInputError

__all__ = ["OPERATORS", "SelectorError", "label_selector_matches", "validate_label_selector"]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
_NEEDS_VALUES = frozenset({"In", "NotIn"})


class SelectorError(ConformanceInputError):
    """A label selector Kubernetes would refuse; the message names where it was found."""


def _string_list(values: object, where: str) -> list[str]:
    """The ``values`` of one requirement, checked to be a list of strings."""
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise SelectorError(f"{where}.values: must be a list of strings, got {excerpt(values)}")
    return values


def _requirement(expression: object, where: str) -> tuple[str, str, frozenset[str]]:
    """Validate one ``matchExpressions`` entry and return (key, operator, values)."""
    if not isinstance(expression, Mapping):
        raise SelectorError(
            f"{where}: must be a mapping with key, operator and values, got {excerpt(expression)}"
        )
    key = expression.get("key")
    if not isinstance(key, str) or not key:
        raise SelectorError(f"{where}.key: must be a non-empty string, got {excerpt(key)}")
    operator = expression.get("operator")
    if operator not in OPERATORS:
        raise SelectorError(
            f"{where}.operator: {excerpt(operator)} is not a valid operator (use {', '.join(OPERATORS)})"
        )
    values = _string_list(expression.get("values"), where)
    if operator in _NEEDS_VALUES and not values:
        raise SelectorError(f"{where}.values: must be non-empty when operator is {operator}")
    if operator not in _NEEDS_VALUES and values:
        raise SelectorError(f"{where}.values: must be empty when operator is {operator}")
    return key, str(operator), frozenset(values)


def _parts(
    selector: Mapping[str, Any], where: str
) -> tuple[dict[str, str], list[tuple[str, str, frozenset[str]]]]:
    """Split a selector into validated matchLabels and requirements."""
    unknown = set(selector) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SelectorError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    match_labels = selector.get("matchLabels") or {}
    if not isinstance(match_labels, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in match_labels.items()
    ):
        raise SelectorError(f"{where}.matchLabels: must map strings to strings, got {excerpt(match_labels)}")
    expressions = selector.get("matchExpressions") or []
    if not isinstance(expressions, list):
        raise SelectorError(f"{where}.matchExpressions: must be a list, got {excerpt(expressions)}")
    requirements = [_requirement(e, f"{where}.matchExpressions[{i}]") for i, e in enumerate(expressions)]
    return dict(match_labels), requirements


def validate_label_selector(selector: object, *, where: str) -> None:
    """Raise :class:`SelectorError` if Kubernetes would refuse this selector (``None`` is valid)."""
    if selector is None:
        return
    if not isinstance(selector, Mapping):
        raise SelectorError(f"{where}: must be a mapping, got {excerpt(selector)}")
    _parts(selector, where)


def _satisfied(operator: str, present: bool, value: str | None, values: frozenset[str]) -> bool:
    """One requirement against one label map, as ``labels.Requirement.Matches``."""
    if operator == "In":
        return present and value in values
    if operator == "NotIn":
        return not present or value not in values
    if operator == "Exists":
        return present
    return not present  # DoesNotExist


def label_selector_matches(
    selector: Mapping[str, Any] | None, labels: Mapping[str, str], *, where: str
) -> bool:
    """Whether ``labels`` satisfy ``selector``; the whole selector is validated first.

    Validation happens before evaluation so that an invalid requirement is reported even
    when an earlier one would already have decided the answer, as the API server refuses
    such a configuration outright.
    """
    if selector is None:
        return True
    if not isinstance(selector, Mapping):
        raise SelectorError(f"{where}: must be a mapping, got {excerpt(selector)}")
    match_labels, requirements = _parts(selector, where)
    if any(labels.get(key) != value for key, value in match_labels.items()):
        return False
    return all(_satisfied(op, key in labels, labels.get(key), values) for key, op, values in requirements)
