"""The shells over the library: the ``nlu-bootstrap`` CLI and the gRPC server (top floor:
nothing imports ``service``).

* ``cli`` and ``commands/`` — one module per subcommand, each a thin shell over a library call;
* ``server`` — one port, the services behind it: ``augmentation`` (stream synthetic
  utterances from registered generators) and ``training`` (NLU jobs in worker processes);
* ``client`` — the Python client; ``generated/`` — the protobuf stubs (from ``protos/``).
"""
