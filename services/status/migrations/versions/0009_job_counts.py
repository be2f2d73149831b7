"""job_counts: counts by (site, status) maintained by triggers on jobs, for GET /stats

Revision ID: 0009
Revises: 0008

`/stats` used to count the whole jobs table (55-85 ms at a million rows, growing with it).
Statement-level triggers fold each statement's changes to `jobs` (the projection's upserts,
retention's deletes, anything else) into `job_counts` in the same transaction, so the
counts are exact at every commit and a read costs a few rows. `site` is '' for a job not
placed yet (a key cannot be NULL). Writers serialize on one transaction-scoped advisory
lock from their first change to `jobs` to their commit (they already did, on these rows).
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_DELTAS = {
    "INSERT": "SELECT coalesce(site, '') AS site, status, 1 AS d FROM new_rows",
    "UPDATE": "SELECT coalesce(site, '') AS site, status, 1 AS d FROM new_rows "
    "UNION ALL SELECT coalesce(site, ''), status, -1 FROM old_rows",
    "DELETE": "SELECT coalesce(site, '') AS site, status, -1 AS d FROM old_rows",
}


def _apply(deltas: str) -> str:
    return (
        "INSERT INTO job_counts (site, status, n) "
        f"SELECT site, status, sum(d) FROM ({deltas}) AS x "
        "GROUP BY site, status HAVING sum(d) <> 0 ORDER BY site, status "
        "ON CONFLICT (site, status) DO UPDATE SET n = job_counts.n + EXCLUDED.n"
    )


def upgrade() -> None:
    op.execute(
        "CREATE TABLE job_counts ("
        " site text NOT NULL, status text NOT NULL, n bigint NOT NULL,"
        " CONSTRAINT pk_job_counts PRIMARY KEY (site, status))"
    )
    op.execute(
        f"""
        CREATE FUNCTION job_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- one counter lock per transaction, not one per (site, status) row: two
            -- writers touching the same counters in different orders cannot deadlock
            PERFORM pg_advisory_xact_lock(hashtextextended('hybridq:job_counts', 0));
            IF TG_OP = 'INSERT' THEN
                {_apply(_DELTAS["INSERT"])};
            ELSIF TG_OP = 'UPDATE' THEN
                {_apply(_DELTAS["UPDATE"])};
            ELSE
                {_apply(_DELTAS["DELETE"])};
            END IF;
            RETURN NULL;
        END $$
        """
    )
    # a trigger with transition tables fires on one event only: three of them
    op.execute(
        "CREATE TRIGGER job_counts_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS "
        "new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply()"
    )
    op.execute(
        "CREATE TRIGGER job_counts_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS "
        "old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply()"
    )
    op.execute(
        "CREATE TRIGGER job_counts_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS "
        "old_rows FOR EACH STATEMENT EXECUTE FUNCTION job_counts_apply()"
    )
    # the jobs already stored; writers wait for the lock, so none is counted twice or missed
    op.execute("LOCK TABLE jobs IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO job_counts (site, status, n) "
        "SELECT coalesce(site, ''), status, count(*) FROM jobs GROUP BY 1, 2"
    )


def downgrade() -> None:
    for event in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER job_counts_{event} ON jobs")
    op.execute("DROP FUNCTION job_counts_apply()")
    op.execute("DROP TABLE job_counts")
