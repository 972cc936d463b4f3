"""The one exception pumpgan raises for bad input."""


class UserError(Exception):
    """Bad input from the user (config, data folder, resume path): shown as one paragraph, no
    traceback, and nothing already written is lost."""
