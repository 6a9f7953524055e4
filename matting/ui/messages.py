"""What a person at the browser is told: the browser text of a :class:`~matting.errors.MattingError`
(no server paths, settings or shell commands), with a last safety net that shortens any absolute path
to its file name and drops any mention of an environment variable. The full text goes to the log."""
from __future__ import annotations

import logging
import re

from ..errors import MattingError

log = logging.getLogger("matting.ui")

# An absolute POSIX path (not part of a URL: no letter, ':' or '/' just before it) or a Windows path.
_POSIX_PATH = re.compile(r"(?<![\w:/.~\-])/(?:[^\s/'\"`()<>,;]+/)+([^\s/'\"`()<>,;]*)")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\s\\'\"`()<>,;]+\\)*([^\s\\'\"`()<>,;]*)")
_SETTING = r"\b(?:MATTING|HF_HUB|HF|GRADIO|PYTORCH|TORCH|CUDA|OMP|PIP)_[A-Z0-9_]+\b"
_PARENTHETICAL_SETTING = re.compile(r"\s*\([^()]*" + _SETTING + r"[^()]*\)")
_SETTING_RE = re.compile(_SETTING + r"(?:=\S+)?")


def scrub(text: str) -> str:
    """``text`` without absolute paths (kept as file names) or environment variable names."""
    text = _POSIX_PATH.sub(lambda m: m.group(1) or "a folder on the server", text)
    text = _WINDOWS_PATH.sub(lambda m: m.group(1) or "a folder on the server", text)
    text = _PARENTHETICAL_SETTING.sub("", text)
    text = _SETTING_RE.sub("a server setting", text)
    return re.sub(r"[ \t]+([.,;:])", r"\1", text)


def for_browser(exc: BaseException) -> str:
    """The message to show for ``exc`` at the browser; logs the full text when it differs."""
    text = exc.for_browser if isinstance(exc, MattingError) else str(exc)
    shown = scrub(text)
    if shown != str(exc):
        log.info("shown to the browser as %r; full message: %s", shown, exc)
    return shown


def has_server_detail(text: str) -> bool:
    """True when ``text`` shows an absolute path or an environment variable (for tests and checks)."""
    return bool(_POSIX_PATH.search(text) or _WINDOWS_PATH.search(text) or re.search(_SETTING, text))
