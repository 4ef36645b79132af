"""What the ledger's parts share: its file, its connection, raw reads and writes, transactions."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nexusmon.store.sqlite import Connection

if TYPE_CHECKING:
    import contextlib


class LedgerBase:
    """The connection under a :class:`~nexusmon.store.ledger.Ledger` (which opens it)."""

    path: Path
    _sql: Connection

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); nested blocks join the outer one."""
        return self._sql.transaction()

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of a read query (for the vault and reports; prefer the typed methods)."""
        return self._sql.query(sql, params)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write statement (in the current transaction, if any); rows changed."""
        return self._sql.execute(sql, params)
