"""Typed errors; the server turns `code` into the error reply's code."""


class ExecutorError(Exception):
    code = "op_failed"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(ExecutorError):
    """Bad user input: a LLaMA-Factory key, model path, dataset name... The CLI exits 2 on it."""

    code = "config_error"


class StateError(ExecutorError):
    """An op called out of order (e.g. train_steps before begin)."""

    code = "bad_state"
