"""The one exception type for user mistakes.

A ``UserError`` is something the researcher can fix in their experiment file or on the command line: it is
reported as a single line on stderr with exit status 2, never as a traceback. Anything else that escapes is a
bug in this tool and keeps its traceback.
"""

import difflib

MAX_LINE = 2000  # characters of an error line; a longer one (a huge value echoed back) is cut in the middle


class UserError(Exception):
    """A mistake in the user's input, reported as one line.

    Args:
        message: what is wrong, naming the offending value.
        hint: how to fix it (optional).
        file: the experiment file (filled in by the runner when omitted).
        step: the 1-based scenario step (filled in by the scenario runner when omitted).
        command: the scenario command of that step.
    """

    def __init__(self, message, hint=None, *, file=None, step=None, command=None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.file = file
        self.step = step
        self.command = command

    def locate(self, *, file=None, step=None, command=None):
        """Fill in where the mistake is, keeping whatever is already known."""
        self.file = self.file or file
        self.step = self.step if self.step is not None else step
        self.command = self.command or command
        return self

    def line(self):
        """The whole error as one line: ``file: step N (command): message (hint: ...)``."""
        where = []
        if self.file:
            where.append(str(self.file))
        if self.step is not None:
            where.append(f"step {self.step}" + (f" ({self.command})" if self.command else ""))
        text = ": ".join(where + [self.message])
        if self.hint:
            text += f" (hint: {self.hint})"
        text = " ".join(text.split())
        if len(text) > MAX_LINE:  # a huge value echoed back: keep the start (file, step, what) and the hint
            cut = len(text) - MAX_LINE + 200
            text = f"{text[:MAX_LINE - 600]} ...[{cut} characters left out]... {text[-400:]}"
        return text

    def __str__(self):
        return self.line()


def suggest(word, candidates, *, n=1, cutoff=0.6, lead="did you mean", quote=True, end="?"):
    """The tail of an error line naming what a mistyped ``word`` was probably meant to be, or "" when nothing is
    close: ``"; did you mean 'epochs'?"`` by default; ``n`` names up to that many (comma-separated), ``cutoff`` is
    difflib's similarity threshold, ``lead``/``quote``/``end`` shape the wording (e.g. ``"; nearest: a, b"``)."""
    near = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=n, cutoff=cutoff)
    if not near:
        return ""
    return f"; {lead} " + ", ".join(f"'{name}'" if quote else name for name in near) + end


class Interrupted(KeyboardInterrupt):
    """A termination signal (SIGTERM from a cluster scheduler, ``kill``) handled like Ctrl-C: the running
    experiment is journaled as ``interrupted``."""

    def __init__(self, signal_name):
        super().__init__(signal_name)
        self.signal_name = signal_name

    def __str__(self):
        return self.signal_name
