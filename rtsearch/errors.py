"""The one exception type that reaches the user as a single line on stderr."""


class RtsearchError(Exception):
    """A problem with user input (a file, an argument): its message is the whole story."""
