"""The CORS rule of spec api.md §1.6, as a pure policy object."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_LOOPBACK = re.compile(r"^http://(localhost|127\.0\.0\.1)(:.*)?$")

VARY = "origin, access-control-request-method, access-control-request-headers"


@dataclass(frozen=True)
class CorsPolicy:
    exact: frozenset[str]
    suffixes: tuple[str, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> CorsPolicy:
        exact: set[str] = set()
        suffixes: list[str] = []
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            if entry.startswith("*"):
                rest = entry[1:]
                suffixes.append(rest if rest.startswith((".", "-")) else "." + rest)
            else:
                exact.add(entry)
        return cls(frozenset(exact), tuple(suffixes))

    def allows(self, origin: str | None) -> bool:
        if not origin:
            return False
        if origin in self.exact or _LOOPBACK.match(origin):
            return True
        return origin.startswith("https://") and origin.endswith(self.suffixes)
