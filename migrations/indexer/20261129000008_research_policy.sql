-- Governance's research policy (issue 15): the smallest minimum cell a study may name and the
-- ceilings on a study's budget and on one researcher's committed budget. ResearchPolicySet is
-- emitted by the registry's constructor too, so the policy in force is always the latest row.
--
-- As for the break-glass policy: a typed ev_* table (rolled back with its blocks on a reorg)
-- and a current-state view over it. uint64 budgets are BIGINT with the same bits (medrec_u64
-- reads them back).

CREATE TABLE ev_research_policy_set (
    block_number BIGINT NOT NULL, log_index INT NOT NULL, tx_hash BYTEA NOT NULL,
    min_cell_size_floor BIGINT NOT NULL, max_study_budget BIGINT NOT NULL,
    max_researcher_budget BIGINT NOT NULL,
    PRIMARY KEY (block_number, log_index)
);

-- The policy in force.
CREATE VIEW research_policy AS
    SELECT min_cell_size_floor, medrec_u64(max_study_budget) AS max_study_budget,
           medrec_u64(max_researcher_budget) AS max_researcher_budget, block_number
    FROM ev_research_policy_set
    ORDER BY block_number DESC, log_index DESC LIMIT 1;

-- Each researcher's committed budget, as the registry counts it (committedBudgetOf): the sum
-- of their studies' budgets, except those closed without ever being approved.
CREATE VIEW researcher_budgets AS
    SELECT researcher,
           sum(CASE WHEN status = 3 AND NOT EXISTS (
                   SELECT 1 FROM ev_study_approved a WHERE a.study_id = studies.study_id)
               THEN 0 ELSE budget END) AS committed,
           count(*) AS studies
    FROM studies
    GROUP BY researcher;
