"""The one base class of the errors a user can make or fix (bad config, missing or corrupt file,
no GPU where one is asked for, ...).

Every stage raises a subclass of :class:`UserError` for such a case, with one message that names
the cause and the fix; ``wsgm.cli`` catches this base class once and prints the message as one
line, without a traceback. Anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix; the message names the cause and the fix."""


class Interrupted(Exception):
    """A termination signal (SLURM time limit, preemption, Ctrl-C) stopped a stage after it saved
    what lets a rerun resume (training: a checkpoint)."""


def damaged(path, what: str, fix: str) -> str:
    """The one-line message for a damaged file: what it is, why, and the fix (delete + rerun)."""
    from wsgm.provenance import record_path

    return f"{path} {what}. Fix: delete it (rm {path} {record_path(path)}) and {fix}"
