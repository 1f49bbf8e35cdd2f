"""`python -m decloud.devnet up|status|down`: the devnet without the `decloud` command."""

from decloud.devnet.cli import app

app(prog_name="decloud devnet")
