"""HYBRIDQ_HANDLERS: the user's handler modules, imported when a worker starts."""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from shared.errors import HandlerModuleError
from shared.worker.builtins import BUILTINS_MODULE, register_builtins
from shared.worker.handlers import Registry, registry


def load_handlers(modules: Sequence[str]) -> Registry:
    """The module-level registry with the built-ins, then every module's handlers. A
    module that fails to import, or registers a job type another handler has (a built-in
    included), stops the worker: HandlerModuleError names the modules."""
    register_builtins(registry)
    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise HandlerModuleError(
                f"HYBRIDQ_HANDLERS: cannot import handler module {module!r}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return registry


def pool_modules(modules: Sequence[str]) -> list[str]:
    """What each pool process imports when it starts (warm: not per job)."""
    return [BUILTINS_MODULE, *modules]
