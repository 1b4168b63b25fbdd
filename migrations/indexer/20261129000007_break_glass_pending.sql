-- Break-glass review findings (issue 14): the policy bounds each provider's openings awaiting
-- review, over all patients (`maxPending`), and EmergencyPolicySet carries it.
--
-- Rows indexed before this column existed came from a contract without the bound: 0 there.
ALTER TABLE ev_emergency_policy_set ADD COLUMN max_pending BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ev_emergency_policy_set ALTER COLUMN max_pending DROP DEFAULT;

-- The policy in force (a new last column, so the view is replaced in place).
CREATE OR REPLACE VIEW emergency_policy AS
    SELECT max_openings, period, cooling_off, justify_within, max_unjustified, block_number,
           max_pending
    FROM ev_emergency_policy_set
    ORDER BY block_number DESC, log_index DESC LIMIT 1;
