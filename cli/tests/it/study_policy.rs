//! Governance's research policy through the CLI (issue 15): `study policy` shows it,
//! `study set-policy` sends it, and a study registered outside it is refused in one line by its
//! Solidity error name, with what to do next, and a non-zero exit.

use crate::harness::Env;

fn register(env: &Env, min_cell: &str, budget: &str) -> Vec<String> {
    [
        "-a",
        "researcher",
        "study",
        "register",
        "--protocol",
        &env.path_str("protocol.txt"),
        "-c",
        "labs",
        "--min-cell",
        min_cell,
        "--budget",
        budget,
    ]
    .map(String::from)
    .to_vec()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn governance_sets_the_research_policy_and_a_study_outside_it_is_refused() {
    let env = Env::deployed();
    let r = env.new_account("researcher", true);
    env.credential(&r, "researcher", "irb");
    env.write("protocol.txt", "a protocol");

    // The deployment's defaults.
    let p = env.json(&["study", "policy"]);
    assert_eq!(p["minCellSizeFloor"], 5, "{p}");
    assert_eq!(p["maxStudyBudget"], 10_000_000, "{p}");
    assert_eq!(p["maxResearcherBudget"], 50_000_000, "{p}");

    // Governance tightens it; the human answer says it in words.
    let set = env.json(&[
        "-a",
        "gov",
        "study",
        "set-policy",
        "--min-cell-floor",
        "20",
        "--max-study-budget",
        "2000000",
        "--max-researcher-budget",
        "3000000",
    ]);
    assert_eq!(set["minCellSizeFloor"], 20, "{set}");
    let p = env.json(&["study", "policy", "--researcher", &r]);
    assert_eq!(p["minCellSizeFloor"], 20, "{p}");
    assert_eq!(p["maxStudyBudget"], 2_000_000, "{p}");
    assert_eq!(p["maxResearcherBudget"], 3_000_000, "{p}");
    assert_eq!(p["committedBudget"], 0, "{p}");
    let h = env.ok(&["study", "policy"]);
    assert!(h.contains("minimum cell of at least 20"), "{h}");
    assert!(h.contains("epsilon 2"), "{h}");

    // Below the floor: refused by name, in one line, exit 3 (a revert), nothing registered.
    let e = env.fail(3, &args(&register(&env, "19", "1000000")));
    assert!(
        e.contains("StudyCellSizeBelowFloor(minCellSize: 19, floor: 20)"),
        "{e}"
    );
    assert!(e.contains("--min-cell at least the floor"), "{e}");
    // Above the study ceiling.
    let e = env.fail(3, &args(&register(&env, "20", "2000001")));
    assert!(
        e.contains("StudyBudgetAboveCeiling(budget: 2000001, ceiling: 2000000)"),
        "{e}"
    );
    // At the floor and the ceiling: registered; then the researcher's ceiling.
    let s = env.json(&args(&register(&env, "20", "2000000")));
    assert_eq!(s["studyId"], 1, "{s}");
    let e = env.fail(3, &args(&register(&env, "20", "1000001")));
    assert!(e.contains("StudyResearcherBudgetExceeded("), "{e}");
    assert!(e.contains("committed: 2000000, budget: 1000001"), "{e}");
    assert!(e.contains("register a smaller study"), "{e}");
    let p = env.json(&["study", "policy", "--researcher", &r]);
    assert_eq!(p["committedBudget"], 2_000_000, "{p}");

    // Only governance sets it, and only a coherent one.
    let e = env.fail(
        3,
        &[
            "-a",
            "researcher",
            "study",
            "set-policy",
            "--min-cell-floor",
            "1",
            "--max-study-budget",
            "100000000",
            "--max-researcher-budget",
            "100000000",
        ],
    );
    assert!(e.contains("AccessControlUnauthorizedAccount"), "{e}");
    let e = env.fail(
        3,
        &[
            "-a",
            "gov",
            "study",
            "set-policy",
            "--min-cell-floor",
            "5",
            "--max-study-budget",
            "2000000",
            "--max-researcher-budget",
            "1999999",
        ],
    );
    assert!(e.contains("StudyInvalidResearchPolicy("), "{e}");
    let p = env.json(&["study", "policy"]);
    assert_eq!(p["minCellSizeFloor"], 20, "{p}");
}
