"""The divergence registry: built-ins and entry-point plugins through one pluggy hook (STYLE §2).

Loading is lazy and isolated: the first use registers the built-ins, then each entry point of the
group ``omasgan.divergences`` allowed by ``OMASGAN_PLUGINS``. A plugin that fails to import, or whose
hook raises, becomes a recorded :class:`PluginLoadError` (one warning) and the rest still load. A name
registered twice becomes a recorded :class:`DivergenceNameClashError`; asking for that name raises it,
every other name keeps working.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from omasgan.divergences import builtin, hookspecs
from omasgan.divergences.base import Divergence
from omasgan.errors import DivergenceNameClashError, InvalidInputError, PluginLoadError, UnknownDivergenceError

__all__ = ["DivergenceInfo", "ENTRY_POINT_GROUP", "available", "get", "info", "load_errors", "plugin_manager"]

ENTRY_POINT_GROUP = "omasgan.divergences"
BUILTIN_PLUGIN = "omasgan.builtin"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class DivergenceInfo:
    """What the registry knows about one divergence."""

    name: str
    factory: Callable[..., Divergence]
    plugin: str  # pluggy plugin name (the entry point name, or omasgan.builtin)
    distribution: str  # providing distribution
    version: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)  # keyword -> default

    @property
    def provider(self) -> str:
        return f"{self.distribution} {self.version} ({self.plugin})"


def _factory_parameters(factory: Callable[..., Divergence]) -> dict[str, Any]:
    parameters = {}
    for parameter in inspect.signature(factory).parameters.values():
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            parameters[parameter.name] = None if parameter.default is parameter.empty else parameter.default
    return parameters


class _Registry:
    def __init__(self) -> None:
        self.pm = pluggy.PluginManager("omasgan")
        self.pm.add_hookspecs(hookspecs)
        self._entry_points_loaded = False
        self._entry_point_errors: list[PluginLoadError] = []
        self._snapshot: tuple | None = None
        self._table: dict[str, DivergenceInfo] = {}
        self._clashes: dict[str, DivergenceNameClashError] = {}
        self._hook_errors: list[PluginLoadError] = []
        self._distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

    # -- loading ------------------------------------------------------------------------------------

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        self.pm.register(builtin, name=BUILTIN_PLUGIN)
        allow = os.environ.get("OMASGAN_PLUGINS")
        allowed = None if allow is None else {name.strip() for name in allow.split(",") if name.strip()}
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if allowed is not None and entry_point.name not in allowed:
                continue
            distribution = getattr(entry_point.dist, "name", "?")
            version = getattr(entry_point.dist, "version", "unknown")
            try:
                module = entry_point.load()
                self.pm.register(module, name=entry_point.name)
                # A hook implementation no spec names (a misspelt hook) is only found here; checked per
                # plugin so that it costs this plugin alone.
                self.pm.check_pending()
                self._distributions[entry_point.name] = (distribution, version)
            except Exception as exc:  # a broken plugin must not break omasgan: record and go on
                if self.pm.has_plugin(entry_point.name):  # pluggy keeps a half-validated plugin registered
                    self.pm.unregister(name=entry_point.name)
                error = PluginLoadError(
                    f"divergence plugin {entry_point.name!r} (distribution {distribution}) failed to load: "
                    f"{type(exc).__name__}: {exc}. Fix or uninstall it, or leave it out of OMASGAN_PLUGINS."
                )
                error.__cause__ = exc
                self._entry_point_errors.append(error)
                warnings.warn(str(error), RuntimeWarning, stacklevel=4)

    def _distribution_of(self, plugin_name: str) -> tuple[str, str]:
        if plugin_name == BUILTIN_PLUGIN:
            from omasgan import __version__

            return "omasgan", __version__
        # Plugins registered directly on the manager (tests, notebooks) have no distribution.
        return self._distributions.get(plugin_name, (plugin_name, "unregistered"))

    def _refresh(self) -> None:
        """Rebuild the table when the set of registered plugins changed (tests add and remove some)."""
        self._load_entry_points()
        snapshot = tuple(name for name, _ in self.pm.list_name_plugin())
        if snapshot == self._snapshot:
            return
        table: dict[str, DivergenceInfo] = {}
        clashes: dict[str, DivergenceNameClashError] = {}
        hook_errors: list[PluginLoadError] = []
        # Built-ins first, then plugins in registration order (pluggy calls newest first).
        for impl in reversed(self.pm.hook.omasgan_register_divergences.get_hookimpls()):
            plugin_name = impl.plugin_name
            distribution, version = self._distribution_of(plugin_name)
            pending: list[DivergenceInfo] = []

            def register(
                name,
                factory,
                *,
                description="",
                _pending=pending,
                _plugin=plugin_name,
                _dist=distribution,
                _version=version,
            ):
                if not isinstance(name, str) or not _NAME.match(name):
                    raise ValueError(f"divergence names must match [a-z][a-z0-9_]*, got {name!r}")
                if not callable(factory):
                    raise ValueError(f"divergence {name!r}: factory must be callable, got {type(factory).__name__}")
                _pending.append(
                    DivergenceInfo(name, factory, _plugin, _dist, _version, description, _factory_parameters(factory))
                )

            try:
                impl.function(register=register)
            except Exception as exc:
                error = PluginLoadError(
                    f"divergence plugin {plugin_name!r} (distribution {distribution}) raised while registering: "
                    f"{type(exc).__name__}: {exc}; its divergences are not available."
                )
                error.__cause__ = exc
                hook_errors.append(error)
                warnings.warn(str(error), RuntimeWarning, stacklevel=4)
                continue
            for entry in pending:
                if entry.name in clashes:
                    continue
                if entry.name in table:
                    first = table.pop(entry.name)
                    clashes[entry.name] = DivergenceNameClashError(
                        f"divergence {entry.name!r} is registered by two providers: {first.provider} and "
                        f"{entry.provider}. Disable one (OMASGAN_PLUGINS lists the plugins to load) or rename it."
                    )
                    warnings.warn(str(clashes[entry.name]), RuntimeWarning, stacklevel=4)
                    continue
                table[entry.name] = entry
        self._table, self._clashes, self._hook_errors, self._snapshot = table, clashes, hook_errors, snapshot

    # -- queries ------------------------------------------------------------------------------------

    def info(self, name: str) -> DivergenceInfo:
        self._refresh()
        if name in self._clashes:
            raise self._clashes[name]
        if name not in self._table:
            known = sorted(self._table)
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise UnknownDivergenceError(
                f"unknown divergence {name!r}.{hint} Available: {', '.join(known)}. "
                "Plugins add more (see `omasgan divergences`)."
            )
        return self._table[name]

    def available(self) -> dict[str, DivergenceInfo]:
        self._refresh()
        return dict(sorted(self._table.items()))

    def errors(self) -> list[Exception]:
        self._refresh()
        return [*self._entry_point_errors, *self._hook_errors, *self._clashes.values()]


_REGISTRY = _Registry()


def plugin_manager() -> pluggy.PluginManager:
    """The pluggy manager. Register extra plugin objects with ``plugin_manager().register(obj, name=...)``."""
    return _REGISTRY.pm


def get(name: str, **params: Any) -> Divergence:
    """Build the divergence registered as ``name`` with keyword parameters ``params``.

    Raises
    ------
    UnknownDivergenceError
        No such name (the message lists the available ones and the closest match).
    DivergenceNameClashError
        Two providers registered the name.
    InvalidInputError
        A parameter the divergence does not take.
    """
    entry = _REGISTRY.info(name)
    unknown = set(params) - set(entry.parameters)
    if unknown:
        raise InvalidInputError(
            f"divergence {name!r} takes parameters {sorted(entry.parameters) or 'none'}, got {sorted(unknown)}."
        )
    divergence = entry.factory(**params)
    if not isinstance(divergence, Divergence):
        raise PluginLoadError(
            f"divergence {name!r} from {entry.provider} built a {type(divergence).__name__}, not an "
            "omasgan.divergences.Divergence."
        )
    return divergence


def info(name: str) -> DivergenceInfo:
    """Registry entry for ``name`` (provider, parameters, description)."""
    return _REGISTRY.info(name)


def available() -> dict[str, DivergenceInfo]:
    """Every usable divergence: name -> :class:`DivergenceInfo` (providing distribution and version)."""
    return _REGISTRY.available()


def load_errors() -> list[Exception]:
    """Plugins that failed to load or register, and name clashes, as exceptions naming the plugin."""
    return _REGISTRY.errors()
