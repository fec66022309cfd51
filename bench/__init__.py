"""marketfeed's benchmark suite: load generator, reference server, scenarios, report.

Run from the repository root as ``.venv/bin/python -m bench <scenario> [options]``;
``python -m bench --help`` lists the scenarios. docs/PERFORMANCE.md is written
from the JSON results by ``python -m bench report``.
"""
