//! `medrec study policy` and `medrec study set-policy`: governance's research policy on chain,
//! the floor under a study's minimum cell and the ceilings on its budget and on the budget one
//! researcher has committed over all of their studies. The registry refuses a registration or
//! an approval outside it; this module only shows and sends it (the rule lives in the contract).

use super::study::studies;
use crate::chain::{self, Chain};
use crate::error::Result;
use crate::keys;
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use clap::Args;
use serde_json::json;

/// `study policy`.
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Also show the budget this researcher has committed over their studies
    #[arg(long, value_name = "ADDRESS")]
    pub researcher: Option<String>,
}

/// `study set-policy`. Budgets are in millionths of epsilon, as `study register --budget`.
#[derive(Debug, Args)]
pub struct SetPolicyArgs {
    /// The smallest minimum cell a study may name (at least 1)
    #[arg(long, value_name = "N")]
    pub min_cell_floor: u32,
    /// The largest budget of one study, in millionths of epsilon (at least 1)
    #[arg(long, value_name = "U")]
    pub max_study_budget: u64,
    /// The largest budget one researcher may have committed over all of their studies (every
    /// study counts its whole budget once approved; one closed before approval counts
    /// nothing), in millionths of epsilon (at least --max-study-budget)
    #[arg(long, value_name = "U")]
    pub max_researcher_budget: u64,
}

/// A budget in millionths of epsilon, as epsilon.
fn epsilon(micro: u64) -> String {
    format!("epsilon {}", micro as f64 / 1_000_000.0)
}

/// Shows the research policy in force (and a researcher's committed budget).
pub async fn policy(a: PolicyArgs, settings: &Settings, out: Printer) -> Result<()> {
    let researcher = a
        .researcher
        .as_deref()
        .map(|r| units::address(r, "researcher"))
        .transpose()?;
    let chain = Chain::connect(settings).await?;
    let d = chain.deployment(settings).await?;
    let s = studies(&chain, &d)?;
    let p = s.researchPolicy().call().await.map_err(|e| chain.err(e))?;
    let mut data = json!({"minCellSizeFloor": p.minCellSizeFloor,
                          "maxStudyBudget": p.maxStudyBudget,
                          "maxResearcherBudget": p.maxResearcherBudget});
    let mut human = format!(
        "a study names a minimum cell of at least {}\n  its budget is at most {} ({})\n  \
         a researcher's studies together at most {} ({}; an approved study counts its whole \
         budget, closed or not)",
        p.minCellSizeFloor,
        p.maxStudyBudget,
        epsilon(p.maxStudyBudget),
        p.maxResearcherBudget,
        epsilon(p.maxResearcherBudget)
    );
    if let Some(r) = researcher {
        let committed = s
            .committedBudgetOf(r)
            .call()
            .await
            .map_err(|e| chain.err(e))?;
        let left = p.maxResearcherBudget.saturating_sub(committed);
        // The largest next study: what is left, within one study's ceiling.
        let next = left.min(p.maxStudyBudget);
        data["researcher"] = json!(r);
        data["committedBudget"] = json!(committed);
        data["left"] = json!(left);
        data["largestNextStudy"] = json!(next);
        human.push_str(&format!(
            "\n  {r} has committed {committed} ({}): {left} ({}) left, a next study of at most \
             {next} ({})",
            epsilon(committed),
            epsilon(left),
            epsilon(next)
        ));
    }
    out.result("study policy", data, &human);
    Ok(())
}

/// Sends a new research policy (governance role).
pub async fn set_policy(a: SetPolicyArgs, settings: &Settings, out: Printer) -> Result<()> {
    let signer = keys::load(settings)?;
    let chain = Chain::connect_signer(settings, signer).await?;
    let d = chain.deployment(settings).await?;
    let s = studies(&chain, &d)?;
    let tx = chain::send(
        &chain,
        s.setResearchPolicy(
            a.min_cell_floor,
            a.max_study_budget,
            a.max_researcher_budget,
        ),
    )
    .await?;
    out.result(
        "study set-policy",
        json!({"minCellSizeFloor": a.min_cell_floor, "maxStudyBudget": a.max_study_budget,
               "maxResearcherBudget": a.max_researcher_budget, "tx": tx}),
        &format!(
            "research policy set: minimum cell at least {}, at most {} per study and {} per \
             researcher (tx {})",
            a.min_cell_floor,
            epsilon(a.max_study_budget),
            epsilon(a.max_researcher_budget),
            tx.tx_hash
        ),
    );
    Ok(())
}
