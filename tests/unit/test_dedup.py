"""The router's de-duplication ledger."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.router.dedup import Claim, SeenJobs


def test_claims_are_atomic_and_survive_a_restart(tmp_path: Path) -> None:
    job_id = uuid.uuid4()
    ledger = SeenJobs(tmp_path / "seen.sqlite3")
    assert ledger.claim(job_id) is Claim.NEW
    assert ledger.claim(job_id) is Claim.PENDING  # a concurrent copy sees the claim
    ledger.done(job_id)
    ledger.close()
    reopened = SeenJobs(tmp_path / "seen.sqlite3")
    assert reopened.claim(job_id) is Claim.DONE


def test_a_released_claim_can_be_taken_again(tmp_path: Path) -> None:
    job_id = uuid.uuid4()
    ledger = SeenJobs(tmp_path / "seen.sqlite3")
    ledger.claim(job_id)
    ledger.release(job_id)
    assert ledger.claim(job_id) is Claim.NEW
    ledger.done(job_id)
    ledger.release(job_id)  # a done job is never released
    assert ledger.claim(job_id) is Claim.DONE
