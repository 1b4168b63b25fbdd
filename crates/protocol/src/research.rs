//! Research aggregates (`POST /v1/research/query`): the query vocabulary and its cost, the
//! signed request and answer, the answer's cells, and how the researcher combines the
//! holders' answers into the one whose hash the receipt records on chain.
//!
//! Texts that are hashed (a query, an answer, a combined answer) are [`canonical_json`]:
//! keys sorted, no whitespace. The researcher hashes the query's text into the signed
//! [`ResearchRequest`] and the receipt; the holder hashes the text it received; so the two
//! ends agree whatever the order a program writes keys in.

use crate::envelope::ResearchRequest;
use alloy::primitives::{Address, B256, U256, keccak256};
use serde::{Deserialize, Serialize};

/// Where a researcher asks a holder.
pub const QUERY_PATH: &str = "/v1/research/query";

/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// ICD-10.
pub const ICD10: &str = "http://hl7.org/fhir/sid/icd-10";
/// ICD-10-CM (the US clinical modification, as US Core records use).
pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";

/// The code systems a condition may be counted by, by the short names `medrec` takes.
pub const CONDITION_SYSTEMS: &[(&str, &str)] =
    &[("snomed", SNOMED), ("icd10", ICD10), ("icd10-cm", ICD10CM)];

/// The system URI of a condition code system's short name (`snomed`, `icd10`, `icd10-cm`).
pub fn condition_system(short: &str) -> Option<&'static str> {
    CONDITION_SYSTEMS
        .iter()
        .find(|(s, _)| *s == short)
        .map(|(_, uri)| *uri)
}

/// The largest epsilon a query may ask for.
pub const MAX_EPSILON: f64 = 10.0;

/// Budget units per epsilon: budgets and costs are counted in millionths of an epsilon.
pub const MICROS_PER_EPSILON: u64 = 1_000_000;

/// The most holders one query may name.
pub const MAX_HOLDERS: usize = 64;

/// The largest magnitude an observation's declared bounds may have.
pub const MAX_BOUND: f64 = 1e12;

/// An observation's value is clamped to the query's bounds and rounded to one of
/// `2 * VALUE_HALF_GRID + 1` steps centred on the bounds' midpoint, from `-VALUE_HALF_GRID` to
/// `VALUE_HALF_GRID`: a patient moves the noised sum of steps by at most this much.
pub const VALUE_HALF_GRID: i64 = 500;

/// The age bands of a condition count, at the pinned block's time: the rows of its domain.
pub const AGE_BANDS: [&str; 5] = ["0-17", "18-39", "40-64", "65+", "unknown"];

/// The sexes of a condition count (FHIR administrative gender): the columns of its domain.
pub const SEXES: [&str; 4] = ["female", "male", "other", "unknown"];

/// How many cells a condition count has: [`AGE_BANDS`] by [`SEXES`].
pub const CELLS: usize = AGE_BANDS.len() * SEXES.len();

/// Every cell of a condition count, `(age band, sex)`, in the order answers list them.
pub fn domain() -> impl Iterator<Item = (&'static str, &'static str)> {
    AGE_BANDS
        .iter()
        .flat_map(|band| SEXES.iter().map(move |sex| (*band, *sex)))
}

/// The sex cell of a FHIR administrative gender: one of [`SEXES`], `unknown` for anything else.
pub fn sex_cell(gender: Option<&str>) -> &'static str {
    match gender {
        Some("female") => "female",
        Some("male") => "male",
        Some("other") => "other",
        _ => "unknown",
    }
}

/// The age band of an age in whole years, `unknown` without one.
pub fn age_band(years: Option<i64>) -> &'static str {
    match years {
        None => "unknown",
        Some(y) if y < 18 => "0-17",
        Some(y) if y < 40 => "18-39",
        Some(y) if y < 65 => "40-64",
        Some(_) => "65+",
    }
}

/// How many blocks old a new query's pinned block may be at a holder on its defaults
/// (`--research-max-pin-age`): older pins would count patients who have since withdrawn.
pub const DEFAULT_MAX_PIN_AGE: u64 = 64;

/// `value` as canonical JSON: keys sorted, no whitespace. What is hashed is this text.
pub fn canonical_json<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    // serde_json's `Value` keeps object keys sorted: going through it sorts every level.
    Ok(serde_json::to_value(value)?.to_string())
}

/// Why a query is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The text is not a query of the vocabulary.
    #[error("malformed query: {0}")]
    Malformed(String),
    /// A condition's code system is not one of [`CONDITION_SYSTEMS`].
    #[error("unknown code system {0:?} for a condition (use {SNOMED}, {ICD10} or {ICD10CM})")]
    ConditionSystem(String),
    /// An observation's code system is not LOINC.
    #[error("unknown code system {0:?} for an observation (use {LOINC})")]
    ObservationSystem(String),
    /// The code is empty, longer than 32 characters, or has characters other than letters,
    /// digits, `-` and `.`.
    #[error("malformed code {0:?}")]
    Code(String),
    /// Epsilon is not in (0, [`MAX_EPSILON`]].
    #[error("epsilon must be in (0, {}]", MAX_EPSILON)]
    Epsilon,
    /// The holders are none, more than [`MAX_HOLDERS`], or not in ascending order each once.
    #[error(
        "the holders must be 1 to {} addresses in ascending order, each once",
        MAX_HOLDERS
    )]
    Holders,
    /// An observation's bounds are not finite numbers with `lower < upper` within
    /// [`MAX_BOUND`].
    #[error(
        "an observation's bounds must be finite, lower below upper, within ±{:e}",
        MAX_BOUND
    )]
    Bounds,
}

/// A query of the fixed vocabulary. Every query is answered with noise: its `epsilon` is what
/// the study's budget pays for it, shared equally by the `holders` it names (each adds noise
/// at `epsilon / holders`), so the combined answer is `epsilon`-differentially private for
/// every patient, whichever of those holders keep their records. A holder answers only a query
/// that names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Query {
    /// Patients with a Condition code, in every cell of age band by sex ([`AGE_BANDS`] x
    /// [`SEXES`]).
    ConditionCount {
        /// SNOMED CT or ICD-10 system URI.
        system: String,
        /// The code.
        code: String,
        /// The privacy loss the query is charged (differential-privacy epsilon).
        epsilon: f64,
        /// The holders asked, in ascending order.
        holders: Vec<Address>,
        /// The block the query pins (so that asking again later is another query).
        #[serde(rename = "pinnedBlock")]
        pinned_block: u64,
    },
    /// The count and mean of an Observation's value, each patient's value clamped to
    /// `[lower, upper]`.
    ObservationStats {
        /// LOINC system URI.
        system: String,
        /// The code.
        code: String,
        /// The privacy loss the query is charged.
        epsilon: f64,
        /// The smallest value counted as itself; smaller ones count as this.
        lower: f64,
        /// The largest value counted as itself; larger ones count as this.
        upper: f64,
        /// The holders asked, in ascending order.
        holders: Vec<Address>,
        /// The block the query pins.
        #[serde(rename = "pinnedBlock")]
        pinned_block: u64,
    },
}

impl Query {
    /// Parses and checks a query's text.
    pub fn parse(text: &str) -> Result<Self, QueryError> {
        let q: Query =
            serde_json::from_str(text).map_err(|e| QueryError::Malformed(e.to_string()))?;
        q.check()?;
        Ok(q)
    }

    /// Checks the query against the vocabulary: its code system, its code, its epsilon, its
    /// holders, an observation's bounds.
    pub fn check(&self) -> Result<(), QueryError> {
        match self {
            Query::ConditionCount { system, .. } => {
                if ![SNOMED, ICD10, ICD10CM].contains(&system.as_str()) {
                    return Err(QueryError::ConditionSystem(system.clone()));
                }
            }
            Query::ObservationStats {
                system,
                lower,
                upper,
                ..
            } => {
                if system != LOINC {
                    return Err(QueryError::ObservationSystem(system.clone()));
                }
                if !(lower.is_finite()
                    && upper.is_finite()
                    && lower < upper
                    && lower.abs() <= MAX_BOUND
                    && upper.abs() <= MAX_BOUND)
                {
                    return Err(QueryError::Bounds);
                }
            }
        }
        let code = self.code();
        if code.is_empty()
            || code.len() > 32
            || !code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(QueryError::Code(code.to_string()));
        }
        let e = self.epsilon();
        if !(e.is_finite() && e > 0.0 && e <= MAX_EPSILON) {
            return Err(QueryError::Epsilon);
        }
        let holders = self.holders();
        if holders.is_empty()
            || holders.len() > MAX_HOLDERS
            || holders.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(QueryError::Holders);
        }
        Ok(())
    }

    /// The code asked about.
    pub fn code(&self) -> &str {
        match self {
            Query::ConditionCount { code, .. } | Query::ObservationStats { code, .. } => code,
        }
    }

    /// The epsilon asked for.
    pub fn epsilon(&self) -> f64 {
        match self {
            Query::ConditionCount { epsilon, .. } | Query::ObservationStats { epsilon, .. } => {
                *epsilon
            }
        }
    }

    /// The holders asked, in ascending order.
    pub fn holders(&self) -> &[Address] {
        match self {
            Query::ConditionCount { holders, .. } | Query::ObservationStats { holders, .. } => {
                holders
            }
        }
    }

    /// The block the query pins.
    pub fn pinned_block(&self) -> u64 {
        match self {
            Query::ConditionCount { pinned_block, .. }
            | Query::ObservationStats { pinned_block, .. } => *pinned_block,
        }
    }

    /// The budget a query spends: epsilon in millionths, rounded up. The holders refuse a
    /// receipt that pays less, and add noise for exactly this epsilon (shared among the
    /// holders), so both ends use this one formula.
    pub fn cost(&self) -> u64 {
        cost(self.epsilon())
    }

    /// The epsilon each holder's answer spends, as the fraction `(numerator, denominator)`:
    /// the query's cost in millionths over a million times the number of holders. Noise is
    /// drawn for this exact fraction, so what the budget pays is what is spent.
    pub fn holder_epsilon(&self) -> (u64, u64) {
        (
            self.cost(),
            MICROS_PER_EPSILON * self.holders().len().max(1) as u64,
        )
    }

    /// [`Query::holder_epsilon`] as the number a holder's [`Answer`] states.
    pub fn holder_epsilon_value(&self) -> f64 {
        let (num, den) = self.holder_epsilon();
        num as f64 / den as f64
    }

    /// The query's text: what the researcher signs the hash of and sends.
    pub fn text(&self) -> String {
        canonical_json(self).unwrap_or_default()
    }

    /// keccak256 of [`Query::text`]: the `queryHash` of the request and of the receipt.
    pub fn hash(&self) -> B256 {
        keccak256(self.text().as_bytes())
    }
}

/// The budget a query with `epsilon` spends: epsilon in millionths, rounded up, at least 1.
pub fn cost(epsilon: f64) -> u64 {
    ((epsilon * MICROS_PER_EPSILON as f64).ceil() as u64).max(1)
}

/// A researcher's signed query: `{"request", "query", "signature"}`, where `query` is the
/// query's text and `request.queryHash` its keccak256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedQuery {
    /// The EIP-712 message.
    pub request: ResearchRequest,
    /// The query's text.
    pub query: String,
    /// The signature of `request`, in hex.
    pub signature: String,
}

/// A holder's answer as sent: the [`Answer`]'s canonical text and the holder's signature of
/// its keccak256 (a plain hash signature, not EIP-712).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAnswer {
    /// The answer's text.
    pub answer: String,
    /// The holder's signature of keccak256(answer), in hex.
    pub signature: String,
}

/// A holder's answer to a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Answer {
    /// The holder that answered.
    pub holder: Address,
    /// The study.
    pub study_id: U256,
    /// The query's hash.
    pub query_hash: B256,
    /// The block whose opt-ins were counted.
    pub pinned_block: u64,
    /// The study's minimum cell size: a cell whose noised count is under it is held back.
    pub min_cell_size: i64,
    /// The epsilon this holder's noise was drawn for: the query's over its holders.
    pub epsilon: f64,
    /// The figures.
    pub result: QueryResult,
}

/// The figures of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueryResult {
    /// A condition count: every cell of age band by sex, in [`AGE_BANDS`] then [`SEXES`]
    /// order.
    Cells {
        /// The cells.
        cells: Vec<Cell>,
    },
    /// An observation's noised count and mean.
    Stats(Stats),
    /// An observation whose noised count is under the minimum cell size.
    Suppressed {
        /// Always true.
        suppressed: bool,
    },
}

/// One cell of a condition count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// One of [`AGE_BANDS`] (age at the pinned block's time).
    pub age_band: String,
    /// One of [`SEXES`].
    pub sex: String,
    /// The noised count; absent when held back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// True when the noised count is under the minimum cell size and not shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Cell {
    /// A cell whose noised count is `noised`, held back when under `min_cell_size`.
    pub fn new(age_band: String, sex: String, noised: i64, min_cell_size: i64) -> Self {
        let suppressed = noised < min_cell_size;
        Self {
            age_band,
            sex,
            count: (!suppressed).then_some(noised),
            suppressed,
        }
    }
}

/// An observation's noised figures at one holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// How many patients have a value (noised).
    pub count: i64,
    /// The mean of the patients' clamped values: the noised sum over the noised count.
    pub mean: Option<f64>,
}

/// The holders' answers combined: what the receipt's `answerHash` is the hash of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Combined {
    /// Condition counts: a cell's counts add up over the holders.
    Cells {
        /// The cells, in [`AGE_BANDS`] then [`SEXES`] order.
        cells: Vec<CombinedCell>,
    },
    /// Observation statistics: counts add up, means are weighted by count.
    Stats {
        /// The noised counts of the holders that showed theirs, added up.
        count: i64,
        /// Their means weighted by their counts.
        mean: Option<f64>,
        /// How many holders held their figures back.
        #[serde(rename = "holdersSuppressed")]
        holders_suppressed: u64,
    },
}

/// One combined cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CombinedCell {
    /// The age band.
    pub age_band: String,
    /// The sex.
    pub sex: String,
    /// The sum of the noised counts the holders showed.
    pub count: i64,
    /// True when some holder held this cell back.
    pub suppressed_at_some_holder: bool,
}

/// Combines the holders' results: by cells when the first is a condition count (every cell
/// of the domain, in its order), else as observation statistics.
pub fn combine<'a>(results: impl IntoIterator<Item = &'a QueryResult>) -> Combined {
    let results: Vec<&QueryResult> = results.into_iter().collect();
    if let Some(QueryResult::Cells { .. }) = results.first() {
        let mut cells: Vec<CombinedCell> = domain()
            .map(|(band, sex)| CombinedCell {
                age_band: band.to_string(),
                sex: sex.to_string(),
                count: 0,
                suppressed_at_some_holder: false,
            })
            .collect();
        for r in &results {
            let QueryResult::Cells { cells: theirs } = r else {
                continue;
            };
            for c in theirs {
                let Some(e) = cells
                    .iter_mut()
                    .find(|e| e.age_band == c.age_band && e.sex == c.sex)
                else {
                    continue;
                };
                match c.count {
                    Some(n) => e.count += n,
                    None => e.suppressed_at_some_holder = true,
                }
            }
        }
        Combined::Cells { cells }
    } else {
        let (mut count, mut sum, mut suppressed) = (0i64, 0f64, 0u64);
        for r in &results {
            match r {
                QueryResult::Stats(Stats {
                    count: c,
                    mean: Some(m),
                }) => {
                    count += c;
                    sum += m * *c as f64;
                }
                _ => suppressed += 1,
            }
        }
        Combined::Stats {
            count,
            mean: (count > 0).then(|| sum / count as f64),
            holders_suppressed: suppressed,
        }
    }
}

impl Combined {
    /// keccak256 of the combined answer's canonical text: the receipt's `answerHash`.
    pub fn hash(&self) -> B256 {
        keccak256(canonical_json(self).unwrap_or_default().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const H1: &str = "0x1111111111111111111111111111111111111111";
    const H2: &str = "0x2222222222222222222222222222222222222222";

    #[test]
    fn queries_parse_with_clear_errors_and_costs() {
        let q = Query::parse(&format!(r#"{{"kind":"condition-count","system":"http://snomed.info/sct","code":"44054006","epsilon":0.5,"holders":["{H1}","{H2}"],"pinnedBlock":7}}"#)).unwrap();
        assert_eq!((q.cost(), q.pinned_block()), (500_000, 7));
        assert_eq!(q.holder_epsilon(), (500_000, 2_000_000));
        let q = Query::parse(&format!(r#"{{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":0.25,"lower":0,"upper":20,"holders":["{H1}"],"pinnedBlock":1}}"#)).unwrap();
        assert_eq!(q.cost(), 250_000);
        assert_eq!(q.holder_epsilon(), (250_000, 1_000_000));
        let cc = |eps: &str, holders: &str| {
            format!(
                r#"{{"kind":"condition-count","system":"http://snomed.info/sct","code":"1","epsilon":{eps},"holders":[{holders}],"pinnedBlock":1}}"#
            )
        };
        let obs = |lower: &str, upper: &str| {
            format!(
                r#"{{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":1,"lower":{lower},"upper":{upper},"holders":["{H1}"],"pinnedBlock":1}}"#
            )
        };
        let h1 = format!("\"{H1}\"");
        for (bad, why) in [
            (
                format!(
                    r#"{{"kind":"condition-count","system":"http://loinc.org","code":"1","epsilon":1,"holders":[{h1}],"pinnedBlock":1}}"#
                ),
                "unknown code system",
            ),
            (
                format!(
                    r#"{{"kind":"condition-count","system":"http://snomed.info/sct","code":"1; DROP","epsilon":1,"holders":[{h1}],"pinnedBlock":1}}"#
                ),
                "malformed code",
            ),
            // No exact queries: epsilon is required, positive and capped.
            (cc("null", &h1), "malformed query"),
            (cc("0", &h1), "epsilon"),
            (cc("-1", &h1), "epsilon"),
            (cc("10.5", &h1), "epsilon"),
            (
                format!(
                    r#"{{"kind":"condition-count","system":"http://snomed.info/sct","code":"1","holders":[{h1}],"pinnedBlock":1}}"#
                ),
                "malformed query",
            ),
            // Holders: at least one, ascending, each once.
            (cc("1", ""), "holders"),
            (cc("1", &format!("\"{H2}\",\"{H1}\"")), "holders"),
            (cc("1", &format!("{h1},{h1}")), "holders"),
            (obs("5", "5"), "bounds"),
            (obs("10", "0"), "bounds"),
            (obs("-1e13", "0"), "bounds"),
            (
                r#"{"kind":"median","system":"http://loinc.org","code":"718-7","pinnedBlock":1}"#
                    .to_string(),
                "malformed query",
            ),
            ("not json".to_string(), "malformed query"),
        ] {
            let e = Query::parse(&bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cost_is_epsilon_in_millionths_rounded_up_and_at_least_one() {
        for (eps, want) in [
            (1e-9, 1),
            (0.000_001, 1),
            (0.000_001_5, 2),
            (0.1, 100_000),
            (0.25, 250_000),
            (1.0, 1_000_000),
            (10.0, 10_000_000),
        ] {
            assert_eq!(cost(eps), want, "{eps:?}");
        }
    }

    #[test]
    fn the_query_text_has_sorted_keys_so_every_client_hashes_the_same() {
        let holder: Address = H1.parse().unwrap();
        let q = Query::ConditionCount {
            system: SNOMED.into(),
            code: "44054006".into(),
            epsilon: 1.0,
            holders: vec![holder],
            pinned_block: 12,
        };
        // The text a client builds with a JSON object whose keys sort.
        let text = json!({"kind": "condition-count", "system": SNOMED, "code": "44054006",
                          "epsilon": 1.0, "holders": [holder], "pinnedBlock": 12})
        .to_string();
        assert_eq!(
            text,
            r#"{"code":"44054006","epsilon":1.0,"holders":["0x1111111111111111111111111111111111111111"],"kind":"condition-count","pinnedBlock":12,"system":"http://snomed.info/sct"}"#
        );
        assert_eq!(q.text(), text);
        assert_eq!(q.hash(), keccak256(text.as_bytes()));
        assert_eq!(Query::parse(&text).unwrap(), q);
        let q = Query::ObservationStats {
            system: LOINC.into(),
            code: "718-7".into(),
            epsilon: 0.5,
            lower: 4.0,
            upper: 14.0,
            holders: vec![holder],
            pinned_block: 3,
        };
        assert_eq!(
            q.text(),
            r#"{"code":"718-7","epsilon":0.5,"holders":["0x1111111111111111111111111111111111111111"],"kind":"observation-stats","lower":4.0,"pinnedBlock":3,"system":"http://loinc.org","upper":14.0}"#
        );
        assert_eq!(condition_system("icd10-cm"), Some(ICD10CM));
        assert_eq!(condition_system("read-v2"), None);
    }

    #[test]
    fn answers_round_trip_in_canonical_form() {
        let text = r#"{"epsilon":0.5,"holder":"0x1111111111111111111111111111111111111111","minCellSize":5,"pinnedBlock":9,"queryHash":"0x2222222222222222222222222222222222222222222222222222222222222222","result":{"cells":[{"ageBand":"18-39","count":7,"sex":"female"},{"ageBand":"40-64","sex":"male","suppressed":true}]},"studyId":"0x1"}"#;
        let a: Answer = serde_json::from_str(text).unwrap();
        assert_eq!(a.study_id, U256::from(1));
        assert_eq!(
            a.result,
            QueryResult::Cells {
                cells: vec![
                    Cell::new("18-39".into(), "female".into(), 7, 5),
                    Cell::new("40-64".into(), "male".into(), 4, 5),
                ]
            }
        );
        assert_eq!(canonical_json(&a).unwrap(), text);
        for result in [
            r#"{"suppressed":true}"#,
            r#"{"count":12,"mean":13.5}"#,
            r#"{"count":0,"mean":null}"#,
        ] {
            let r: QueryResult = serde_json::from_str(result).unwrap();
            assert_eq!(canonical_json(&r).unwrap(), result);
        }
    }

    #[test]
    fn the_domain_has_every_cell_once() {
        assert_eq!(age_band(None), "unknown");
        assert_eq!(age_band(Some(17)), "0-17");
        assert_eq!(age_band(Some(18)), "18-39");
        assert_eq!(age_band(Some(64)), "40-64");
        assert_eq!(age_band(Some(65)), "65+");
        assert_eq!(sex_cell(Some("female")), "female");
        assert_eq!(sex_cell(Some("Female")), "unknown");
        assert_eq!(sex_cell(None), "unknown");
        let Combined::Cells { cells } = combine([&QueryResult::Cells { cells: vec![] }]) else {
            panic!("cells");
        };
        assert_eq!(cells.len(), CELLS);
        assert_eq!(
            (cells[0].age_band.as_str(), cells[0].sex.as_str()),
            ("0-17", "female")
        );
        assert!(
            cells
                .iter()
                .all(|c| c.count == 0 && !c.suppressed_at_some_holder)
        );
    }

    #[test]
    fn answers_combine_cell_by_cell_or_weighted_by_count() {
        let a = QueryResult::Cells {
            cells: vec![
                Cell::new("18-39".into(), "female".into(), 7, 5),
                Cell::new("40-64".into(), "male".into(), 2, 5),
            ],
        };
        let b = QueryResult::Cells {
            cells: vec![
                Cell::new("18-39".into(), "female".into(), 6, 5),
                // Not a cell of the domain: not counted.
                Cell::new("18-39".into(), "robot".into(), 60, 5),
            ],
        };
        let Combined::Cells { cells } = combine([&a, &b]) else {
            panic!("cells");
        };
        let cell = |band: &str, sex: &str| {
            cells
                .iter()
                .find(|c| c.age_band == band && c.sex == sex)
                .cloned()
                .unwrap()
        };
        assert_eq!(cell("18-39", "female").count, 13);
        assert!(!cell("18-39", "female").suppressed_at_some_holder);
        assert_eq!(cell("40-64", "male").count, 0);
        assert!(cell("40-64", "male").suppressed_at_some_holder);
        assert_eq!(cells.len(), 20);
        let s = |count, mean| QueryResult::Stats(Stats { count, mean });
        let c = combine([
            &s(10, Some(1.0)),
            &s(30, Some(3.0)),
            &QueryResult::Suppressed { suppressed: true },
        ]);
        assert_eq!(
            c,
            Combined::Stats {
                count: 40,
                mean: Some(2.5),
                holders_suppressed: 1
            }
        );
        assert_eq!(
            canonical_json(&c).unwrap(),
            r#"{"count":40,"holdersSuppressed":1,"mean":2.5}"#
        );
        assert_eq!(c.hash(), keccak256(canonical_json(&c).unwrap().as_bytes()));
        assert_eq!(
            canonical_json(&combine([])).unwrap(),
            r#"{"count":0,"holdersSuppressed":0,"mean":null}"#
        );
    }
}
