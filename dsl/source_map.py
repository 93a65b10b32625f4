"""Where each node of loaded data came from: JSON paths mapped to source spans."""

from __future__ import annotations

from dataclasses import dataclass, field

from dsl.diagnostics import Span

JsonPath = tuple[str | int, ...]


def json_pointer(path: JsonPath) -> str:
    """RFC 6901 pointer for a path, e.g. `/templates/repair/fields/0`."""
    parts = (str(p).replace("~", "~0").replace("/", "~1") for p in path)
    return "".join("/" + p for p in parts)


@dataclass(slots=True)
class SourceMap:
    """Spans of mapping keys and of values, by path; aliased paths resolve to their anchor."""

    keys: dict[JsonPath, Span] = field(default_factory=dict)
    values: dict[JsonPath, Span] = field(default_factory=dict)
    aliases: dict[JsonPath, JsonPath] = field(default_factory=dict)

    def _resolve(self, path: JsonPath) -> JsonPath:
        # An error deep inside aliased data points into the anchored text.
        for cut in range(len(path), 0, -1):
            target = self.aliases.get(path[:cut])
            if (target is not None and path[:cut] not in self.values) or (
                target is not None and cut < len(path)
            ):
                return (*target, *path[cut:])
        return path

    def key(self, path: JsonPath) -> Span | None:
        """Span of the key that names `path`, if it is a mapping entry."""
        return self.keys.get(path) or self.keys.get(self._resolve(path))

    def value(self, path: JsonPath) -> Span | None:
        """Span of the value at `path`."""
        return self.values.get(path) or self.values.get(self._resolve(path))

    def locate(self, path: JsonPath, prefer_key: bool = False) -> Span | None:
        """The best span for `path`, falling back to its nearest located ancestor."""
        for cut in range(len(path), -1, -1):
            sub = path[:cut]
            first, second = (self.key, self.value) if prefer_key else (self.value, self.key)
            span = first(sub) or second(sub)
            if span is not None:
                return span
        return None

    def update(self, other: SourceMap) -> None:
        """Merge another file's map into this one."""
        self.keys.update(other.keys)
        self.values.update(other.values)
        self.aliases.update(other.aliases)
