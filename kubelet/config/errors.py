"""The one error type of the configuration: a bad setting, named by its path and value.
Raised by decoding, validation and flag loading; never caught and swallowed inside this package.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A setting that stops start-up. `path` names it (`KubeletConfiguration.syncFrequency`,
    `--node-labels`, a file name); the message says what is wrong with which value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
