"""The plugin contract: pluggy markers and the one hook divergence plugins implement."""

from __future__ import annotations

import pluggy

__all__ = ["hookimpl", "hookspec", "omasgan_register_divergences"]

hookspec = pluggy.HookspecMarker("omasgan")
hookimpl = pluggy.HookimplMarker("omasgan")


@hookspec
def omasgan_register_divergences(register) -> None:
    """Register this plugin's divergences.

    Called once per plugin, the first time the registry is used after the set of plugins changed
    (``omasgan.divergences.get``, ``available``, the ``omasgan divergences`` CLI). Built-ins are registered
    through this same hook, before any entry-point plugin.

    :param register: callback with signature
        ``register(name: str, factory: Callable[..., Divergence], *, description: str = "") -> None``.
        ``name`` must match ``[a-z][a-z0-9_]*``; ``factory(**params)`` must return a
        :class:`~omasgan.divergences.Divergence` and take its parameters as keyword arguments with
        defaults (they are listed by ``omasgan divergences``).
    :raises ValueError: from ``register`` for a malformed name or a factory that is not callable.
        A name registered by two providers is reported as a
        :class:`~omasgan.errors.DivergenceNameClashError` naming both, and that name becomes unusable
        until one of them is disabled (``OMASGAN_PLUGINS``); other names keep working. An exception
        raised by this hook is reported as a :class:`~omasgan.errors.PluginLoadError` and the plugin's
        registrations are dropped.

    .. versionadded:: 0.1
    """
