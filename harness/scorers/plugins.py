"""Scorers from other packages: the ``mlx_harness.scorers`` entry-point group.

A package adds a scorer without editing this one by declaring, in its pyproject.toml::

    [project.entry-points."mlx_harness.scorers"]
    contains_target = "my_package.scorers:ContainsTarget"

The entry point's name is the name suites use; the object is a subclass of the public
``harness.scorers.Scorer`` returning ``harness.scorers.Score`` (see ``base.py``). Built-in
scorers keep their names: a plugin cannot replace one. Entry points are read only when a
suite names a scorer that is not built in, so installed plugins cost nothing otherwise.
See ``examples/mlx-harness-scorer-example``.
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import HarnessError
from .base import Scorer

GROUP = "mlx_harness.scorers"


def _entry_points():
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def plugin_names() -> list[str]:
    """Names of the installed plugin scorers (without importing them)."""
    return sorted({ep.name for ep in _entry_points()})


@lru_cache(maxsize=None)
def load_plugin(name: str) -> type[Scorer] | None:
    """The scorer class a package registered as ``name``, or None when none did."""
    eps = [ep for ep in _entry_points() if ep.name == name]
    if not eps:
        return None
    dists = sorted({getattr(getattr(ep, "dist", None), "name", None) or "?" for ep in eps})
    if len({ep.value for ep in eps}) > 1:
        raise HarnessError(f"scorer {name!r} is registered by more than one package ({', '.join(dists)})",
                           field=f"entry point {GROUP}",
                           hint="uninstall one of them; names in a suite must mean one scorer")
    ep = eps[0]
    where = f"entry point {GROUP}:{name} = {ep.value} (package {dists[0]})"
    try:
        cls = ep.load()
    except Exception as exc:  # the plugin's import failed: say which one, not a traceback
        raise HarnessError(f"cannot load scorer {name!r}: {type(exc).__name__}: {exc}", field=where,
                           hint="fix or reinstall the package that provides it") from None
    if not (isinstance(cls, type) and issubclass(cls, Scorer)):
        raise HarnessError(f"scorer {name!r} is not a harness.scorers.Scorer subclass", field=where,
                           hint="point the entry point at a class derived from harness.scorers.Scorer")
    if cls.name != name:
        raise HarnessError(f"scorer class {cls.__name__} has name {cls.name!r}, but its entry point is {name!r}",
                           field=where, hint="make the entry point's name and the class's `name` the same")
    return cls
