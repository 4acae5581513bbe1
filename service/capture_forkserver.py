"""Imported by the forkserver of capture processes, once, before it forks any.

Besides loading the capture code (so a forked capture starts with it), it stands in a stub
for the parent's ``__main__``. Why: every process multiprocessing starts re-imports the
parent's main module first (``vigie``'s, uvicorn's, pytest's) to be able to unpickle
objects defined there; a capture never receives any, and that import cost ~1 s of CPU per
capture (scans/hour fell to a third). Python 3.11's own remedy, preloading ``"__main__"``,
does not work for the forkserver (it is never told the main module's path). Children skip
the re-import when ``__main__`` already carries the name or path they would import: the
parent states both in :data:`MAIN_ENV` before the forkserver starts.
"""

from __future__ import annotations

import json
import os
import sys
import types

import service.capture_process  # noqa: F401  (loaded once here, inherited by every fork)

#: Environment variable naming the parent's main module (JSON ``{"name", "path"}``).
MAIN_ENV = "VIGIE_CAPTURE_PARENT_MAIN"


def _stand_in_for_main() -> None:
    stated = os.environ.get(MAIN_ENV)
    if not stated:
        return
    main = json.loads(stated)
    stub = types.ModuleType("__main__")
    if main.get("name"):
        stub.__spec__ = types.SimpleNamespace(name=main["name"])
    if main.get("path"):
        stub.__file__ = main["path"]
    sys.modules["__main__"] = stub


_stand_in_for_main()
