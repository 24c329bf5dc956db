"""The server's recent log lines, kept in memory for the diagnostic snapshot's `server_logs`
(pyggy/diagnostics.py): pyggy logs to stderr and writes no log file. A module of its own so
that `pyggy.cli` installs the handler at once without importing the snapshot code."""

from __future__ import annotations

import logging
from collections import deque

LOG_LINES = 2000  # lines kept for `server_logs`, each cut at LOG_LINE_MAX characters
LOG_LINE_MAX = 4096


class LogTail(logging.Handler):
    """The last `LOG_LINES` formatted log lines (at most LOG_LINES × LOG_LINE_MAX characters)."""

    def __init__(self, lines: int = LOG_LINES) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=lines)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record)[:LOG_LINE_MAX])
        except Exception:  # a logging handler must not raise
            self.handleError(record)

    def text(self) -> str:
        return "".join(line + "\n" for line in list(self.lines))


LOG_TAIL = LogTail()  # on the root logger from pyggy.cli's start (every line of the run)
