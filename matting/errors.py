"""The one exception type that every rejection of user input raises."""


class MattingError(ValueError):
    """Bad input, an unknown method, a parameter out of range or missing weights.

    The message is meant for a person: which input, what was wrong, what is expected.
    """
