"""The ``handgrad`` command line: one module per subcommand (``train`` with ``text`` for the
character model, ``gradcheck``, ``bench``), ``common`` for what they share, ``main`` for the
parser. ``handgrad.cli.main(argv)`` is the entry point."""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
