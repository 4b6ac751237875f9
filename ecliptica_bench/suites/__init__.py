"""The suite registry: the one list of suites that build, run and score all use.

The five bundled suites come first, in a fixed order; then plugin suites, loaded on first use of the
registry (so importing this package stays cheap): first the entry points of the group
`ecliptica_bench.suites` (sorted by entry-point name; each names a module with a module-level SUITE, or a
Suite object itself), then the modules named in the ECLIPTICA_SUITES environment variable (comma-separated
importable module names, each with a module-level SUITE), in the order given."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping
from types import ModuleType

from ..errors import EclipticaError
from . import conditional_safety, ecliptica, length_control, litmus, truthfulqa
from .base import Suite

BUNDLED: tuple[Suite, ...] = (ecliptica.SUITE, truthfulqa.SUITE, conditional_safety.SUITE, length_control.SUITE, litmus.SUITE)
ENTRY_POINT_GROUP = "ecliptica_bench.suites"
ENV_VAR = "ECLIPTICA_SUITES"
# a suite name becomes a folder, a file stem, a case_id prefix and a column prefix ("<name>__delta")
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")


def _suite_of(obj: object, origin: str) -> Suite:
    """The Suite an entry point or a module stands for: the object itself, or the module's SUITE."""
    if isinstance(obj, ModuleType):
        if not hasattr(obj, "SUITE"):
            raise EclipticaError(f"{origin}: module {obj.__name__!r} has no module-level SUITE")
        obj = obj.SUITE
    if not isinstance(obj, Suite):
        raise EclipticaError(f"{origin}: SUITE is a {type(obj).__name__}, not an ecliptica_bench.suites.base.Suite")
    if not _NAME.match(obj.name):
        raise EclipticaError(f"{origin}: suite name {obj.name!r} must be lowercase letters, digits and underscores")
    return obj


def _entry_point_suites() -> Iterator[tuple[str, Suite]]:
    from importlib import metadata  # scans every installed distribution: only when the registry is first used

    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        origin = f"entry point {ep.name!r} ({ep.value}) of group {ENTRY_POINT_GROUP}"
        try:
            obj = ep.load()
        except Exception as exc:
            raise EclipticaError(f"{origin}: module does not import: {_first_line(exc)}") from exc
        yield origin, _suite_of(obj, origin)


def _env_suites() -> Iterator[tuple[str, Suite]]:
    for name in (n.strip() for n in os.environ.get(ENV_VAR, "").split(",")):
        if not name:
            continue
        origin = f"{ENV_VAR}: {name}"
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise EclipticaError(f"{origin}: module {name!r} does not import: {_first_line(exc)}") from exc
        yield origin, _suite_of(module, origin)


def load_suites() -> dict[str, Suite]:
    """Bundled suites, then entry-point plugins, then ECLIPTICA_SUITES modules: {name: suite} in that order.
    A plugin whose name is taken by another suite is an error; the same Suite object twice is registered once."""
    suites = {s.name: s for s in BUNDLED}
    origins = {s.name: "bundled" for s in BUNDLED}
    for gen in (_entry_point_suites, _env_suites):
        for origin, suite in gen():
            if suite.name in suites:
                if suites[suite.name] is suite:
                    continue
                raise EclipticaError(
                    f"{origin}: suite name {suite.name!r} clashes with a registered suite ({origins[suite.name]})"
                )
            suites[suite.name] = suite
            origins[suite.name] = origin
    return suites


class _Registry(Mapping[str, Suite]):
    """{name: Suite}, read-only; the plugins load on the first lookup or iteration (load_suites), once per
    process (reload() forgets them, e.g. after ECLIPTICA_SUITES changed)."""

    def __init__(self) -> None:
        self._suites: dict[str, Suite] | None = None

    def _all(self) -> dict[str, Suite]:
        if self._suites is None:
            self._suites = load_suites()
        return self._suites

    def __getitem__(self, name: str) -> Suite:
        return self._all()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return f"SUITES({', '.join(self._all())})"

    def reload(self) -> None:
        self._suites = None


SUITES = _Registry()


def reload_suites() -> None:
    """Forget the loaded plugins: the next use of SUITES loads them again (tests; a changed ECLIPTICA_SUITES)."""
    SUITES.reload()


def default_suite() -> Suite:
    """The first registered suite (ECLIPTICA): the dataset's default config, the board's per-type chart and
    the default lm-eval task."""
    return next(iter(SUITES.values()))


def get_suite(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise EclipticaError(
            f"unknown suite {name!r} (known: {', '.join(SUITES)}; a plugin suite registers through {ENV_VAR} "
            f"or the {ENTRY_POINT_GROUP} entry points)"
        ) from None


def parse_suites(spec: str | None) -> list[Suite]:
    """'a,b' -> suites in registry order; None or 'all' -> every suite."""
    if not spec or spec == "all":
        return list(SUITES.values())
    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise EclipticaError(f"--suites {spec!r}: no suite named (choose from {', '.join(SUITES)}, or 'all')")
    for n in names:
        get_suite(n)
    return [s for s in SUITES.values() if s.name in names]
