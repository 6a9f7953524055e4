"""The one exception type that every rejection of user input raises."""


class MattingError(ValueError):
    """Bad input, an unknown method, a parameter out of range or missing weights.

    The message is meant for a person: which input, what was wrong, what is expected. It is written
    for someone at a terminal and may name files and settings of this machine; ``browser`` (optional)
    says the same for someone at a web page, who can see neither: no server paths, no environment
    variables, no shell commands. :attr:`for_browser` is what the app shows.
    """

    def __init__(self, message: str = "", *, browser: str | None = None):
        super().__init__(message)
        self.browser = browser

    @property
    def for_browser(self) -> str:
        """The message for a person at the app (the browser text when there is one)."""
        return self.browser or str(self)
