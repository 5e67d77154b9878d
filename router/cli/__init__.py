"""The ``router`` command line: ``serve``, ``sim``, ``policy …``, ``train``/``eval``/``calibrate``/``classify``.

Owns argument parsing and exit codes; each subcommand calls into the package that does the work. Top of the
import order: nothing imports this package.
"""

from router.cli.main import main

__all__ = ["main"]
