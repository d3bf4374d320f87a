"""Fjordgate's launcher: the `fjordgate` command, the one-command local stack, and the environment reader.

The launcher starts the control plane and the edges as processes; it never imports them (an import-linter
contract), so a crash or a heavy import in one cannot take the launcher down with it.
"""
