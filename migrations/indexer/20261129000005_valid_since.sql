-- Re-credentialing (issue 14, hole 10): a grant counts only if it was made at or after the
-- grantee's credential run began (ParticipantRegistry's validSince; ConsentRegistry's
-- `_granted`). No event carries validSince, so it is derived from the credential events the
-- way the contract sets it: an issue that renews a live credential of the same role (the
-- account's previous credential event is an issue of that role, not expired at this issue's
-- time) keeps the run's start; the first issue of an account starts a run at its own time;
-- any other issue (after a revocation, a lapse or a change of role) starts one a second later.
--
-- Granted carries no time: ev_granted.granted_at is its block's time (the contract's
-- grantedAt) as the node reports it with the log (eth_getLogs' blockTimestamp), compared with
-- valid_since as the contract compares them. 0 where it is unknown (rows indexed before this
-- migration, a node that does not report it): such a grant is compared with its run by block,
-- through `run_block` (the block of the issue that started the run) and `new_run` (whether
-- that issue followed an earlier credential): it counts from run_block on (a first run) or
-- after run_block (a new run starts the second after its issue). That is the contract's
-- comparison wherever each block's time is later than its parent's, as the chain rules
-- require; anvil gives blocks mined within one second the same time.

ALTER TABLE ev_granted ADD COLUMN granted_at BIGINT NOT NULL DEFAULT 0;

CREATE VIEW credential_runs AS
WITH ev AS (
    SELECT account, block_number, log_index, role, issued_at AS at, expires_at, TRUE AS issue
    FROM ev_credential_issued
    UNION ALL
    SELECT account, block_number, log_index, role, revoked_at, NULL, FALSE
    FROM ev_credential_revoked
), marked AS (
    SELECT ev.*,
           lag(issue) OVER w AS prev_issue, lag(role) OVER w AS prev_role,
           lag(expires_at) OVER w AS prev_expires
    FROM ev WINDOW w AS (PARTITION BY account ORDER BY block_number, log_index)
), issues AS (
    SELECT account, block_number, log_index, role, at AS issued_at, expires_at,
           prev_issue IS NOT NULL AS after_earlier,
           COALESCE(prev_issue AND prev_role = role AND at < prev_expires, FALSE) AS renewal
    FROM marked WHERE issue
), runs AS (
    SELECT issues.*,
           count(*) FILTER (WHERE NOT renewal)
             OVER (PARTITION BY account ORDER BY block_number, log_index) AS run
    FROM issues
)
SELECT account, block_number, log_index, role, issued_at, expires_at,
       first_value(issued_at + CASE WHEN after_earlier THEN 1 ELSE 0 END) OVER r AS valid_since,
       first_value(block_number) OVER r AS run_block,
       first_value(after_earlier) OVER r AS new_run
FROM runs
WINDOW r AS (PARTITION BY account, run ORDER BY block_number, log_index);

-- Each account's current run: its latest issue's (validSinceOf reads it whether or not the
-- credential is live now).
CREATE VIEW credential_current_runs AS
    SELECT DISTINCT ON (account) account, valid_since, run_block, new_run
    FROM credential_runs
    ORDER BY account, block_number DESC, log_index DESC;

-- Each grant's standing against a run `r` of its grantee: given before the run began.
CREATE FUNCTION medrec_grant_void(granted_at BIGINT, granted_block BIGINT,
                                  valid_since BIGINT, run_block BIGINT, new_run BOOLEAN)
    RETURNS BOOLEAN LANGUAGE SQL IMMUTABLE PARALLEL SAFE
    AS $$ SELECT CASE
        WHEN valid_since IS NULL THEN FALSE
        WHEN granted_at > 0 THEN granted_at < valid_since
        ELSE granted_block < run_block OR (new_run AND granted_block = run_block) END $$;
