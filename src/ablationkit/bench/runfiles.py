"""The old name of ``ablationkit.bench.store`` (a run's file names and records).

Importing this module gives the store module itself, so code written for 0.1
(``from ablationkit.bench.runfiles import RunFiles, file_stem``) and anything that patches one
of its names act on the one owner of a run's files, never on a copy.
"""

from __future__ import annotations

import sys

from ablationkit.bench import store

DamagedRunFile = store.DamagedRunFile
RunFiles = store.RunFiles
RunStore = store.RunStore
check_distinct = store.check_distinct
file_stem = store.file_stem
legacy_stem = store.legacy_stem

sys.modules[__name__] = store
