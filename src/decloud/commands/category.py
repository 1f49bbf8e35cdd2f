"""`decloud category list`: the task size classes and the deadlines they give a deal."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from decloud.commands.common import (
    ConfigOption,
    JsonOption,
    console,
    print_json,
    reading,
    reports_errors,
)
from decloud.sdk.categories import categories

app = typer.Typer(help="The categories of tasks.", no_args_is_help=True)


@app.command("list")
@reports_errors
def list_categories(config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """Every category: its reference duration T, and the deadlines it gives a task."""
    found = categories(reading(config))
    if as_json:
        print_json({"categories": [category.to_json() for category in found]})
        return
    table = Table("id", "name", "T (s)", "final deadline (s)", "description")
    for category in found:
        document = category.to_json()
        table.add_row(
            str(category.id),
            Text(category.name),
            str(category.work_clock_time_ref),
            str(document["final_deadline_s"]),
            Text(category.description),
        )
    console().print(table)
