"""Cross-component tests. Their fixtures (`postgres_url`, `nats_url`, `redis_url`, the pytest-django database on
`postgres_url`, `processes`) live in `tests/support/fixtures.py`, which the repository's root `conftest.py` loads
for every test path, so `control_plane/*/tests` and `edge_gateway/tests` get the same servers and database.
"""
