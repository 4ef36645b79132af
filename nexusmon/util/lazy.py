"""Modules loaded on first use, with the standard library's :class:`importlib.util.LazyLoader`.

asyncio (with socket, ssl, subprocess and logging behind it) costs a command ~20 ms to
import; an up-to-date re-run settles every task from the cache without an event loop
and so never needs it. Modules that drive tasks import it from here::

    from nexusmon.util.lazy import asyncio

and the first attribute read (``asyncio.run``) imports it for real.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType
from typing import TYPE_CHECKING

__all__ = ["asyncio", "lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """``name`` as imported so far, or a module object that imports it when first used."""
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module named {name!r}", name=name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


if TYPE_CHECKING:
    import asyncio
else:
    asyncio = lazy_module("asyncio")
