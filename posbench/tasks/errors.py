"""Errors the tasks package raises for bad input (task files, data files, parameters)."""


class TaskError(ValueError):
    """A task file, parameter or data file is wrong; the message names the file, key and value."""


class MissingData(TaskError):
    """A data file a task needs is absent: the task is skipped with this message (it names the data set to download)."""
