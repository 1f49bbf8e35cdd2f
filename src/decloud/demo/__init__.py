"""`decloud demo`: the two demonstrations of the README's first command.

- `marketplace` (the default): a devnet comes up, the requester buys a trust-3 execution of
  the sample WASM app through the market, the workers agree on its result, the requester
  downloads it, and everybody's payment is shown;
- `protocol` (`--protocol`): the protocol alone on a bare chain, one transaction at a time,
  with a wrong worker that loses its stake, and the gas of every call.
"""
