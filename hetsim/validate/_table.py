"""Reading a measured table (CSV) whose columns are known, with one-line errors for bad files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from hetsim.validate.calibrate import CalibrationError


def read_table(path: str | Path, required: Sequence[str], expected: str) -> list[dict[str, str]]:
    """The rows of the CSV at ``path``; every column of ``required`` must be there.

    ``expected`` names the table the file should look like (``shared/calibration/gpu_ops.csv``).

    Examples
    --------
    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "t.csv")
    >>> _ = open(p, "w").write("a,b\\n1,2\\n")
    >>> read_table(p, ("a", "b"), "t.csv")
    [{'a': '1', 'b': '2'}]
    >>> read_table(p, ("a", "c"), "t.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hetsim.validate.calibrate.CalibrationError: ...t.csv: column 'c' is missing, expected the columns of t.csv (a, c)
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = [c for c in required if c not in (reader.fieldnames or ())]
            if missing:
                raise CalibrationError(f"{path}: column {missing[0]!r} is missing, expected the columns of {expected} "
                                       f"({', '.join(required)})")
            return list(reader)
    except OSError as exc:
        raise CalibrationError(f"{path}: cannot be read ({exc.strerror}), expected {expected}") from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CalibrationError(f"{path}: not a CSV file ({exc}), expected {expected}") from None
