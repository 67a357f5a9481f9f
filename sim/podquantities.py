"""Every ``resource.Quantity`` field of a Pod, checked as Go's decoder checks it.

CAA's webhook decodes the whole object into ``corev1.Pod`` (k8s.io/api v0.36 in v0.22.0)
before it looks at anything, so one bad quantity *anywhere* in the pod - an ephemeral
container's request, the overhead, an ``emptyDir.sizeLimit``, a downward-API divisor, a
status field - makes it answer 400, matching runtime class or not. :data:`QUANTITY_FIELDS`
lists those fields (k8s.io/api core/v1 types.go at v0.36.0); :func:`check_pod_quantities`
walks them. An object or list of the wrong JSON type on the way is refused too, as Go's
decoder refuses it; ``null`` and absence are empty, as in Go.

The walk runs on what a JSON parser produced; a body whose strings were written with
escapes is walked a second time in its marked form (sim.jsonescapes), and a quantity
carrying :data:`sim.jsonescapes.ESCAPE_MARK` is refused: Go reads a quantity's raw bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from copy import deepcopy
from typing import Any

from sim.bounds import MAX_POD_QUANTITIES, excerpt
from sim.errors import ConformanceInputError
from sim.jsonescapes import ESCAPE_MARK, mark_escapes, unmark
from sim.quantities import QuantityError, parse_quantity, quantity_format, quantity_string, quantity_value

#: Path steps: a key, ``[]`` (every item of a list), ``{}`` (every value of a map: the quantities).
EACH, VALUES = "[]", "{}"

_CONTAINER_LISTS = ("containers", "initContainers", "ephemeralContainers")
_STATUS_LISTS = ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses")
_DIVISOR = ("resourceFieldRef", "divisor")

#: Every quantity field of a Pod; a tuple of keys stands for each of them in turn.
QUANTITY_FIELDS: tuple[tuple[str | tuple[str, ...], ...], ...] = (
    ("spec", _CONTAINER_LISTS, EACH, "resources", ("requests", "limits"), VALUES),
    ("spec", _CONTAINER_LISTS, EACH, "env", EACH, "valueFrom", *_DIVISOR),
    ("spec", "overhead", VALUES),
    ("spec", "resources", ("requests", "limits"), VALUES),
    ("spec", "volumes", EACH, "emptyDir", "sizeLimit"),
    ("spec", "volumes", EACH, "downwardAPI", "items", EACH, *_DIVISOR),
    ("spec", "volumes", EACH, "projected", "sources", EACH, "downwardAPI", "items", EACH, *_DIVISOR),
    (
        "spec",
        "volumes",
        EACH,
        "ephemeral",
        "volumeClaimTemplate",
        "spec",
        "resources",
        ("requests", "limits"),
        VALUES,
    ),
    ("status", _STATUS_LISTS, EACH, "allocatedResources", VALUES),
    ("status", _STATUS_LISTS, EACH, "resources", ("requests", "limits"), VALUES),
    ("status", "allocatedResources", VALUES),
    ("status", "resources", ("requests", "limits"), VALUES),
    ("status", "nodeAllocatableResourceClaimStatuses", EACH, "resources", VALUES),
)


def _get(parent: dict[str, Any], key: str, marked: bool) -> Any:
    if not marked:
        return parent.get(key)
    found = None
    for name, value in parent.items():  # keys may carry marks: compare them as decoded
        if unmark(name) == key:
            found = value  # the last duplicate wins, as in Go
    return found


#: One quantity found: its field path, the object or list holding it, its key there, its value.
Found = tuple[str, Any, Any, Any]


def _walk(
    node: Any, steps: tuple[str | tuple[str, ...], ...], where: str, marked: bool, holder: Any, at: Any
) -> Iterator[Found]:
    if not steps:
        yield where, holder, at, node
        return
    if node is None:
        return
    step, rest = steps[0], steps[1:]
    if step == EACH:
        if not isinstance(node, list):
            raise ConformanceInputError(f"{where}: expected a list, got {excerpt(node)}")
        for index, item in enumerate(node):
            yield from _walk(item, rest, f"{where}[{index}]", marked, node, index)
        return
    if not isinstance(node, dict):
        raise ConformanceInputError(f"{where}: expected an object, got {excerpt(node)}")
    if step == VALUES:
        for name, value in node.items():
            yield f"{where}.{unmark(name) if marked else name}", node, name, value
        return
    for key in (step,) if isinstance(step, str) else step:
        found = _get(node, key, marked)
        yield from _walk(found, rest, f"{where}.{key}" if where else key, marked, node, key)


def pod_quantities(pod: dict[str, Any], *, marked: bool = False) -> Iterator[tuple[str, Any]]:
    """``(field path, raw value)`` of every quantity in ``pod`` (``marked``: keys may carry marks)."""
    for steps in QUANTITY_FIELDS:
        for where, _, _, value in _walk(pod, steps, "", marked, None, None):
            yield where, value


def count_pod_quantities(pod: dict[str, Any], limit: int, *, marked: bool = False) -> int:
    """How many quantities ``pod`` holds, counting no further than ``limit + 1`` (nothing parsed)."""
    count = 0
    for steps in QUANTITY_FIELDS:
        for _ in _walk(pod, steps, "", marked, None, None):
            count += 1
            if count > limit:
                return count
    return count


def canonical_quantities(pod: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``pod`` with every valid quantity as Go re-encodes it (``Quantity.String()``).

    Go's decoder turns ``0.5`` into ``"500m"`` and ``"1.0"`` into ``"1"`` on a round trip; a
    value it would refuse, or a wrongly shaped pod, is left as it is.
    """
    copy: dict[str, Any] = deepcopy(pod)  # keeps JsonFloat's text
    for steps in QUANTITY_FIELDS:
        try:
            found = list(_walk(copy, steps, "", False, None, None))
        except ConformanceInputError:
            continue
        for _, holder, key, value in found:
            parsed = quantity_value(value)
            if parsed is not None and holder is not None:
                holder[key] = quantity_string(parsed, quantity_format(value))
    return copy


def _as_written(marked: str) -> str:
    """A marked string with each escaped character shown as a ``\\uXXXX`` escape again."""
    parts = marked.split(ESCAPE_MARK)
    return parts[0] + "".join(f"\\u{ord(part[0]):04x}{part[1:]}" if part else "" for part in parts[1:])


def check_pod_quantities(pod: dict[str, Any], *, marked: bool = False) -> None:
    """Refuse the pod as Go's decoder would: the first bad quantity, named by its field path.

    Raises :class:`sim.errors.ConformanceInputError` (a :class:`QuantityError` for a value).
    """
    for where, value in pod_quantities(pod, marked=marked):
        if marked and isinstance(value, str) and ESCAPE_MARK in value:
            raise QuantityError(
                f"{where}: {excerpt(_as_written(value))} is written with a JSON escape; "
                "Go's decoder reads a quantity's raw bytes, so it is not a Kubernetes quantity"
            )
        if quantity_value(value) is None:
            parse_quantity(value, where=where)  # raises, naming the field
            raise AssertionError("quantity_value and parse_quantity disagree")  # pragma: no cover


def escaped_quantity(
    body: bytes, path: tuple[str, ...] = (), *, loads: Callable[[bytes], Any] = json.loads
) -> str | None:
    """Why Go would refuse the pod at ``path`` in the JSON ``body`` for an escaped quantity, or None.

    Only a body holding a backslash can spell a quantity with an escape, so only that body
    is parsed again, in its marked form (sim.jsonescapes); ``body`` must be valid JSON.
    """
    if b"\\" not in body:
        return None
    node: Any = loads(mark_escapes(body))
    for key in path:
        if not isinstance(node, dict):
            return None
        node = _get(node, key, marked=True)
    if not isinstance(node, dict):
        return None
    try:
        if count_pod_quantities(node, MAX_POD_QUANTITIES, marked=True) > MAX_POD_QUANTITIES:
            return None  # the webhook refuses the pod for its size, without parsing them
        check_pod_quantities(node, marked=True)
    except ConformanceInputError as exc:
        return str(exc)
    return None
