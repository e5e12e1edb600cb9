"""Helpers shared by the tests of several areas.

``tests/`` is on ``sys.path`` (``pythonpath`` in pyproject.toml), so any test imports them as
``from _helpers.api import ...``. Helpers of one area stay in that area's folder.
"""
