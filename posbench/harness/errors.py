"""The error classes the harness shares, and which errors are the user's. Imports nothing, so that any part of the
harness (the engine, the sweep runner, the commands, the CLI) can raise them without importing another part.

Every error class posbench defines for bad input (TaskError, SchemeError, CheckpointError, SweepError, ...)
subclasses ValueError; the CLI prints those as one `error: ...` line (exit 2). A ValueError raised anywhere else (a
bug, or a library) keeps its traceback.
"""

OWN_PACKAGES = ("posbench",)


class UserError(ValueError):
    """A problem with the user's input (a flag, a path): printed as one clear message, without a traceback."""


class SweepError(ValueError):
    """A sweep file or run option is wrong; the message names the file, key and value."""


def is_user_error(err: BaseException) -> bool:
    return isinstance(err, ValueError) and type(err).__module__.split(".")[0] in OWN_PACKAGES
