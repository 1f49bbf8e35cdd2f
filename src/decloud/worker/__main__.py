"""`python -m decloud.worker run`: the worker agent without the `decloud` command."""

from decloud.worker.cli import app

app(prog_name="decloud worker")
