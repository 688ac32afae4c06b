"""The KTH action dataset's naming (``personNN_action_dN``) and its standard split by person."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from predrnn.data.formats.sequence import SequenceArray
from predrnn.errors import DataError


def kth_person_id(name: str) -> int:
    """The person number in a KTH name such as ``person01_walking_d1`` (-> 1)."""
    match = re.search(r"person(\d+)", str(name))
    if match is None:
        raise DataError(f"Cannot find the KTH person in {name!r}; expected names like person01_walking_d1.")
    return int(match.group(1))


def split_kth_by_person(
    sequences: SequenceArray,
    train_persons: Sequence[int] = tuple(range(1, 17)),
    test_persons: Sequence[int] = tuple(range(17, 26)),
) -> tuple[SequenceArray, SequenceArray]:
    """The standard KTH split by person: persons 1-16 train, 17-25 test (views, no copy).

    Sequence names (folder or file names) must contain ``personNN``.
    """
    persons = np.array([kth_person_id(n) for n in sequences.names])
    train = np.flatnonzero(np.isin(persons, list(train_persons)))
    test = np.flatnonzero(np.isin(persons, list(test_persons)))
    return sequences.subset(train), sequences.subset(test)
