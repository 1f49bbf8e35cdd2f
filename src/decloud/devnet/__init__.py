"""The devnet: one command that starts a local chain, deploys decloud, funds every role and
runs the market, the result store, a scheduler and workers, writing the one config file
every other command reads. See docs/devnet.md."""
