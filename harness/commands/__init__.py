"""Subcommands of `harness`, one module each (see harness.cli.COMMAND_MODULES)."""
