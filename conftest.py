"""Root of the test tree: loads the shared fixtures (real servers, the test database, process handles) for every
test path in `pyproject.toml`, not only `tests/` (see tests/support/fixtures.py)."""

pytest_plugins = ["tests.support.fixtures"]
