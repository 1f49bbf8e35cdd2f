"""Chain event cursors persisted in the service's own database.

A service that follows the chain must resume where it stopped, and must not remember a
block as processed unless what it learnt from that block is stored too. Keeping the cursor
in the same database as that knowledge lets both be saved in one transaction: `SqlCursorStore`
writes through the session it is given, so the consumer commits its changes and the cursor
together.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from decloud.chain.events import Cursor
from decloud.service.tables import CursorRow


class SqlCursorStore:
    """A `decloud.chain.events.CursorStore` over the `chain_cursors` table.

    It writes through `session`, so the caller decides when the cursor is committed: with
    the changes the events it saw caused, never before them.
    """

    def __init__(self, session: Session) -> None:
        self._session = session

    def load(self, stream: str) -> Cursor | None:
        row = self._session.get(CursorRow, stream)
        if row is None:
            return None
        return Cursor.from_json({"next_block": row.next_block, "recent": row.recent})

    def save(self, stream: str, cursor: Cursor) -> None:
        data = cursor.to_json()
        row = self._session.get(CursorRow, stream)
        if row is None:
            self._session.add(
                CursorRow(stream=stream, next_block=data["next_block"], recent=data["recent"])
            )
        else:
            row.next_block = data["next_block"]
            row.recent = data["recent"]
        self._session.flush()
