"""Every error the user can fix, in one bottom-layer module (it imports nothing from `asap`).

`UserError` is the one base class: bad data, a bad config value, a bad file. The entry points print it in one red
line and exit with status 2 (`asap.utils.cli.exit_on_user_error`), never with a traceback of internals. A message
names what to fix (the file, the record, the key). Each subclass also keeps the builtin base it always had, so
`except ValueError` / `except RuntimeError` around library calls still catches it.

    UserError                        a generic fixable error (a path, a value, a pairs file)
    ├── ConfigError (ValueError)     a model / loss / ablation / optim value that cannot be used
    ├── DGM4DataError (ValueError)   a split file, record, image or tokenizer of the data set
    │   └── AuxTextMissingError      records without an auxiliary text in the cache (policy `error`)
    ├── AuxCacheError (ValueError)   an auxiliary-text cache file that cannot be read
    │   └── AuxCacheMismatchError    a cache written by another model or prompt
    ├── PredictionFileError (ValueError)  a prediction file that cannot be scored
    ├── BreakdownError (ValueError)  a grouping of the per-slice breakdown that cannot be read or applied
    ├── CheckpointError (RuntimeError)    a checkpoint missing, corrupt, unsafe or of another kind
    ├── ConversionError              official tensors that do not map onto ours
    ├── PromptError (ValueError)     a prompt template that cannot be used for its task
    ├── BackendUnavailable           an aux-text backend whose library, server or data is not there
    ├── CacheBusyError               another process is writing the same cache file
    ├── MergeError                   aux-text shard files missing or inconsistent
    └── NonFiniteLossError           the training loss became NaN or infinite
"""

from __future__ import annotations


class UserError(Exception):
    """An error the user can fix (a path, a file, a config value); printed without a traceback."""


class ConfigError(UserError, ValueError):
    """A model / loss / ablation / optim config value that cannot be used (unknown key, bad choice)."""


class DGM4DataError(UserError, ValueError):
    """Bad DGM4 input (split file, record, image or aux text); the message names the file and the record."""


class AuxTextMissingError(DGM4DataError):
    """Records without an auxiliary text in the cache (policy `error`)."""


class AuxCacheError(UserError, ValueError):
    """A cache file that cannot be read as an auxiliary-text cache."""


class AuxCacheMismatchError(AuxCacheError):
    """A cache written by another model or prompt than the one about to add to it."""


class PredictionFileError(UserError, ValueError):
    """A prediction file (or set of arrays) that cannot be scored; the message names the array."""


class BreakdownError(UserError, ValueError):
    """A grouping that cannot be read or applied; the message names the grouping, slice and column."""


class CheckpointError(UserError, RuntimeError):
    """A checkpoint that is missing, corrupt, truncated, unsafe to unpickle or not of the expected kind."""


class ConversionError(UserError):
    """Tensors that do not map (no target, or another shape); the message lists every one."""


class PromptError(UserError, ValueError):
    """A prompt template that cannot be used for its task."""


class BackendUnavailable(UserError):
    """A backend whose library, server or data is not there (the message says what to install or set)."""


class CacheBusyError(UserError):
    """Another process is writing the same cache file."""


class MergeError(UserError):
    """Shard files missing or inconsistent."""


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite."""
