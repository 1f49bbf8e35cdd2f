"""The `decloud` command groups of the SDK, one module per group (STYLE.md section 4):
`wallet`, `account`, `app`, `dataset`, `workerpool`, `category`, `deal`, `task`, `result`,
and the `init`, `sign` and `cancel` commands of the `order` group, whose other commands live
with the market (`decloud.market.cli`).

`add_commands(root, order_group)` mounts them all on the `decloud` command.
"""

from __future__ import annotations

import typer

from decloud.commands import (
    account,
    app,
    category,
    dataset,
    deal,
    result,
    task,
    wallet,
    workerpool,
)
from decloud.commands.order import add_order_commands

GROUPS: dict[str, typer.Typer] = {
    "wallet": wallet.app,
    "account": account.app,
    "app": app.app,
    "dataset": dataset.app,
    "workerpool": workerpool.app,
    "category": category.app,
    "deal": deal.app,
    "task": task.app,
    "result": result.app,
}


def add_commands(root: typer.Typer, order_group: typer.Typer) -> None:
    """Mount every group on `root` (the `decloud` command) and add `order init|sign|cancel`
    to `order_group` (the market's `decloud order`)."""
    for name, group in GROUPS.items():
        root.add_typer(group, name=name)
    add_order_commands(order_group)
