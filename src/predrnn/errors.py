"""Errors a user can cause. The CLI prints these without a traceback and exits non-zero."""


class PredRNNError(Exception):
    """Base class of every error caused by user input (files, configs, arguments)."""


class DataError(PredRNNError, ValueError):
    """A data file or array is missing, unreadable, of the wrong shape, or out of range."""


class ConfigError(PredRNNError, ValueError):
    """A configuration file or override is invalid."""


class CheckpointError(PredRNNError, ValueError):
    """A checkpoint is missing, unreadable, or does not match the model's arguments."""
