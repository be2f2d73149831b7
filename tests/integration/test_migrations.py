"""Alembic stairway: every revision upgrades, downgrades and upgrades again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.script import ScriptDirectory

from devtools import environment
from services.status.migrate import alembic_config, downgrade, upgrade

pytestmark = pytest.mark.connected


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = "hybridq_test_stairway"
    environment.drop_database(name)
    url = environment.create_database(name)
    yield url
    environment.drop_database(name)


def test_stairway(empty_database: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(empty_database))
    revisions = list(reversed(list(script.walk_revisions())))
    assert revisions
    for revision in revisions:
        upgrade(empty_database, revision.revision)
        downgrade(empty_database, revision.down_revision or "base")
        upgrade(empty_database, revision.revision)
