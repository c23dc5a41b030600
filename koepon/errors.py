"""One error type for the CLI: a one-line cause and what to do, then a non-zero exit."""


class KoeponError(Exception):
    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code
