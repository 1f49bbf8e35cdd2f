"""`python -m decloud`: the `decloud` command, for environments without its script."""

from decloud.cli import app

app(prog_name="decloud")
