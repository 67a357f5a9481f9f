"""Label selector semantics: each operator, the AND of all parts, and invalid selectors."""

from __future__ import annotations

from typing import Any

import pytest

from sim.errors import ConformanceInputError
from sim.kube.selectors import SelectorError, label_selector_matches, validate_label_selector

LABELS = {"kubernetes.io/metadata.name": "team-a", "tier": "gold"}


def matches(selector: Any, labels: dict[str, str] = LABELS) -> bool:
    return label_selector_matches(selector, labels, where="test selector")


def expr(key: str, operator: str, values: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"key": key, "operator": operator}
    if values is not None:
        entry["values"] = values
    return {"matchExpressions": [entry]}


@pytest.mark.parametrize("selector", [None, {}, {"matchLabels": {}}, {"matchExpressions": []}])
def test_empty_selectors_match_everything(selector: Any) -> None:
    assert matches(selector)
    assert matches(selector, {})


def test_match_labels_need_every_pair() -> None:
    assert matches({"matchLabels": {"tier": "gold"}})
    assert not matches({"matchLabels": {"tier": "silver"}})
    assert not matches({"matchLabels": {"tier": "gold", "zone": "a"}})


def test_in_requires_the_key_with_a_listed_value() -> None:
    assert matches(expr("tier", "In", ["silver", "gold"]))
    assert not matches(expr("tier", "In", ["silver"]))
    assert not matches(expr("zone", "In", ["a"]))


def test_not_in_matches_absent_keys_and_other_values() -> None:
    assert matches(expr("tier", "NotIn", ["silver"]))
    assert not matches(expr("tier", "NotIn", ["gold"]))
    assert matches(expr("zone", "NotIn", ["a"])), "a missing key is not in any list"


def test_exists_and_does_not_exist() -> None:
    assert matches(expr("tier", "Exists"))
    assert not matches(expr("zone", "Exists"))
    assert matches(expr("zone", "DoesNotExist"))
    assert not matches(expr("tier", "DoesNotExist"))


def test_an_empty_label_value_still_exists() -> None:
    assert matches(expr("flag", "Exists"), {"flag": ""})
    assert matches(expr("flag", "In", [""]), {"flag": ""})


def test_all_parts_are_anded() -> None:
    selector = {
        "matchLabels": {"tier": "gold"},
        "matchExpressions": [
            {"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["kube-system"]},
            {"key": "zone", "operator": "DoesNotExist"},
        ],
    }
    assert matches(selector)
    assert not matches(selector, {**LABELS, "zone": "a"})
    assert not matches(selector, {**LABELS, "kubernetes.io/metadata.name": "kube-system"})


def test_namespace_exclusion_as_the_webhook_uses_it() -> None:
    selector = expr("kubernetes.io/metadata.name", "NotIn", ["kube-system", "peer-pods-webhook-system"])
    assert not matches(selector, {"kubernetes.io/metadata.name": "kube-system"})
    assert matches(selector, {"kubernetes.io/metadata.name": "kube-system-apps"})


@pytest.mark.parametrize(
    ("selector", "fragment"),
    [
        (expr("tier", "Equals", ["gold"]), "'Equals' is not a valid operator"),
        (expr("tier", "In", []), "must be non-empty when operator is In"),
        (expr("tier", "NotIn"), "must be non-empty when operator is NotIn"),
        (expr("tier", "Exists", ["gold"]), "must be empty when operator is Exists"),
        (expr("tier", "DoesNotExist", ["x"]), "must be empty when operator is DoesNotExist"),
        (expr("", "Exists"), "key: must be a non-empty string"),
        ({"matchLabels": {"tier": 1}}, "matchLabels: must map strings to strings"),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions: must be a list"),
        ({"matchExpressions": ["tier"]}, "must be a mapping"),
        (
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": [1]}]},
            "values: must be a list of strings",
        ),
        ({"matchLabel": {}}, "unknown field(s) matchLabel"),
        (["tier"], "must be a mapping"),
    ],
)
def test_invalid_selectors_name_where(selector: Any, fragment: str) -> None:
    with pytest.raises(SelectorError) as caught:
        matches(selector)
    assert "test selector" in str(caught.value) and fragment in str(caught.value)
    assert isinstance(caught.value, ConformanceInputError)


def test_invalid_requirement_is_reported_even_after_a_deciding_one() -> None:
    selector = {
        "matchExpressions": [
            {"key": "zone", "operator": "Exists"},
            {"key": "tier", "operator": "Bogus"},
        ]
    }
    with pytest.raises(SelectorError, match=r"matchExpressions\[1\]\.operator"):
        matches(selector)


def test_validate_accepts_none_and_refuses_bad_operator() -> None:
    validate_label_selector(None, where="x")
    with pytest.raises(SelectorError, match=r"x\.matchExpressions"):
        validate_label_selector(expr("a", "Has"), where="x")
