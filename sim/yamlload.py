"""The one YAML loader of the project: safe, bounded, and without anchors or aliases.

Pods, MutatingWebhookConfigurations, peer-pods ConfigMaps, fixtures, LPAR descriptions
and the requirement catalogue are all read through :func:`load_all`/:func:`load_one`.

A "billion laughs" document (aliases of aliases of a list) is 600 bytes of YAML that
becomes gigabytes of Python objects, and anything that prints the value (an error
message) pays for it again. Kubernetes manifests have no use for anchors, so any anchor,
alias or merge key (``<<: *x``) is refused before a single object is built, with its
line and column. The check is one pass of libyaml's event parser (C, no objects built);
the document is then constructed by libyaml's safe loader. The number of nodes is also
bounded (:data:`sim.bounds.MAX_YAML_NODES`), and callers bound the input size first.
"""

from __future__ import annotations

from typing import Any

import yaml

from sim.bounds import MAX_YAML_DEPTH, MAX_YAML_NODES
from sim.errors import ConformanceInputError

__all__ = ["YamlInputError", "load_all", "load_one"]

_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_NODE_EVENTS = (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent)
_END_EVENTS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_WHY = (
    "anchors and aliases are refused (a Kubernetes manifest has no use for them, "
    "and they can expand without bound)"
)


class YamlInputError(ConformanceInputError):
    """YAML the suite refuses (syntax, anchors/aliases, size); the message names the source."""


def _where(event: yaml.Event) -> str:
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"


def _check_events(text: str | bytes, source: str) -> None:
    """Refuse anchors and aliases, and too many nodes, from the event stream alone."""
    nodes = depth = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, _END_EVENTS):
            depth -= 1
        if isinstance(event, yaml.AliasEvent):
            raise YamlInputError(f"{source}: YAML alias *{event.anchor} at {_where(event)}: {_WHY}")
        if isinstance(event, _NODE_EVENTS):
            if event.anchor is not None:
                raise YamlInputError(f"{source}: YAML anchor &{event.anchor} at {_where(event)}: {_WHY}")
            nodes += 1
            if not isinstance(event, yaml.ScalarEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise YamlInputError(
                        f"{source}: YAML nested more than {MAX_YAML_DEPTH} levels deep "
                        f"at {_where(event)}; refused"
                    )
            if nodes > MAX_YAML_NODES:
                raise YamlInputError(f"{source}: more than {MAX_YAML_NODES:,} YAML nodes; refused")


def load_all(text: str | bytes, *, source: str) -> list[Any]:
    """Every non-empty document of ``text``; errors name ``source``."""
    try:
        _check_events(text, source)
        return [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as exc:
        raise YamlInputError(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlInputError(f"{source}: YAML nested too deeply") from None


def load_one(text: str | bytes, *, source: str) -> Any:
    """A single document (``None`` when empty); more than one is an error naming ``source``."""
    documents = load_all(text, source=source)
    if len(documents) > 1:
        raise YamlInputError(f"{source}: expected one YAML document, found {len(documents)}")
    return documents[0] if documents else None
