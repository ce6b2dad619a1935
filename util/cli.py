"""Shared command-line helpers."""

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows '(default: X)' except for flags without a value default (None, False)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class InputError(Exception):
    """Bad input from the user: the command line prints the message, without a traceback."""
