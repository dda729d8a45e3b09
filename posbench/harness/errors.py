"""The error classes the harness shares, and which errors are the user's. Imports nothing, so that any part of the
harness (the engine, the sweep runner, the commands, the CLI) can raise them without importing another part.

Every error class posbench defines for bad input (TaskError, SchemeError, CheckpointError, SweepError, ...)
subclasses ValueError; the CLI prints those as one `error: ...` line (exit 2). A ValueError raised anywhere else (a
bug, or a library) keeps its traceback.
"""
import errno

OWN_PACKAGES = ("posbench",)


class UserError(ValueError):
    """A problem with the user's input (a flag, a path): printed as one clear message, without a traceback."""


class SweepError(ValueError):
    """A sweep file or run option is wrong; the message names the file, key and value."""


# Errors of the file system that the user can fix (permissions, a full or read-only disk, a path that is a file):
# reported as one line naming the path, like bad input.
USER_OS_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOENT, errno.ENOTDIR,
                  errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG, errno.ENOTEMPTY, errno.EMFILE}

BUG_LINE = ("this is a bug in posbench, not a problem with your input: please report it with the command line and "
            "the traceback above")


def is_user_error(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in USER_OS_ERRORS:
        return True
    return isinstance(err, ValueError) and type(err).__module__.split(".")[0] in OWN_PACKAGES


def error_line(err: BaseException) -> str:
    """The one line a user error prints: the message, or for a file-system error the path(s) and the reason."""
    if isinstance(err, OSError) and not isinstance(err, ValueError):
        paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
        return f"error: {paths + ': ' if paths else ''}{err.strerror or err}"
    return f"error: {err}"
