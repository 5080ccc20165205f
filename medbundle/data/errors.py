"""The one exception type for problems a user can cause with their data."""

from __future__ import annotations

__all__ = ["DataError"]


class DataError(ValueError):
    """A problem with the user's data (files, folders, variables, labels), not with the code.

    Every message names the file or folder concerned, says what is wrong and says what to do, for example
    ``"/d/Train.mat: no image variable 'data' (variables found: ['X', 'y']). Rename the variables or pass
    data_key=/label_key= (bundle keys --data_key/--label_key)."``
    """
