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
use std::collections::BTreeMap;

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
}

/// A query of the fixed vocabulary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Query {
    /// Patients with a Condition code, by age band and sex.
    ConditionCount {
        /// SNOMED CT or ICD-10 system URI.
        system: String,
        /// The code.
        code: String,
        /// Differential-privacy epsilon: Laplace noise on counts when given.
        epsilon: Option<f64>,
        /// The block the query pins (so that asking again later is another query).
        #[serde(rename = "pinnedBlock")]
        pinned_block: u64,
    },
    /// Count, mean and quartiles of an Observation's value.
    ObservationStats {
        /// LOINC system URI.
        system: String,
        /// The code.
        code: String,
        /// Differential-privacy epsilon (noise on the count).
        epsilon: Option<f64>,
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

    /// Checks the query against the vocabulary: its code system, its code, its epsilon.
    pub fn check(&self) -> Result<(), QueryError> {
        match self {
            Query::ConditionCount { system, .. } => {
                if ![SNOMED, ICD10, ICD10CM].contains(&system.as_str()) {
                    return Err(QueryError::ConditionSystem(system.clone()));
                }
            }
            Query::ObservationStats { system, .. } => {
                if system != LOINC {
                    return Err(QueryError::ObservationSystem(system.clone()));
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
        if let Some(e) = self.epsilon()
            && !(e.is_finite() && e > 0.0 && e <= MAX_EPSILON)
        {
            return Err(QueryError::Epsilon);
        }
        Ok(())
    }

    /// The code asked about.
    pub fn code(&self) -> &str {
        match self {
            Query::ConditionCount { code, .. } | Query::ObservationStats { code, .. } => code,
        }
    }

    /// The epsilon asked for, if any.
    pub fn epsilon(&self) -> Option<f64> {
        match self {
            Query::ConditionCount { epsilon, .. } | Query::ObservationStats { epsilon, .. } => {
                *epsilon
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

    /// The budget a query spends: epsilon in millionths (rounded up), at least 1. The holders
    /// refuse a receipt that pays less, so both ends use this one formula.
    pub fn cost(&self) -> u64 {
        cost(self.epsilon())
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

/// The budget a query with `epsilon` spends: epsilon in millionths (rounded up), at least 1.
pub fn cost(epsilon: Option<f64>) -> u64 {
    epsilon.map(|e| (e * 1e6).ceil() as u64).unwrap_or(1).max(1)
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
    /// The study's minimum cell size: smaller cells are suppressed.
    pub min_cell_size: i64,
    /// The figures.
    pub result: QueryResult,
}

/// The figures of an answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum QueryResult {
    /// A condition count, by age band and sex.
    Cells {
        /// The cells, ordered by age band and sex.
        cells: Vec<Cell>,
    },
    /// An observation's statistics.
    Stats(Stats),
    /// An observation whose count is under the minimum cell size.
    Suppressed {
        /// Always true.
        suppressed: bool,
    },
}

/// One cell of a condition count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cell {
    /// `0-17`, `18-39`, `40-64`, `65+` or `unknown` (age at the pinned block's time).
    pub age_band: String,
    /// The patient's administrative gender, or `unknown`.
    pub sex: String,
    /// The count (noisy when the query asked for epsilon); absent when suppressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// True when the count is under the minimum cell size and not shown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

impl Cell {
    /// A cell with `count` patients, suppressed when under `min_cell_size`.
    pub fn new(age_band: String, sex: String, count: i64, min_cell_size: i64) -> Self {
        let suppressed = count < min_cell_size;
        Self {
            age_band,
            sex,
            count: (!suppressed).then_some(count),
            suppressed,
        }
    }
}

/// An observation's statistics at one holder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// How many values (noisy when the query asked for epsilon).
    pub count: i64,
    /// Their mean.
    pub mean: Option<f64>,
    /// First quartile.
    pub q1: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// Third quartile.
    pub q3: Option<f64>,
}

/// The holders' answers combined: what the receipt's `answerHash` is the hash of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Combined {
    /// Condition counts: a cell's counts add up over the holders.
    Cells {
        /// The cells, ordered by age band and sex.
        cells: Vec<CombinedCell>,
    },
    /// Observation statistics: counts add up, means are weighted by count.
    Stats {
        /// The values counted at the holders that showed theirs.
        count: i64,
        /// Their mean.
        mean: Option<f64>,
        /// How many holders suppressed their figures.
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
    /// The sum of the counts the holders showed.
    pub count: i64,
    /// True when some holder suppressed this cell.
    pub suppressed_at_some_holder: bool,
}

/// Combines the holders' results: by cells when the first is a condition count, else as
/// observation statistics.
pub fn combine<'a>(results: impl IntoIterator<Item = &'a QueryResult>) -> Combined {
    let results: Vec<&QueryResult> = results.into_iter().collect();
    if let Some(QueryResult::Cells { .. }) = results.first() {
        let mut cells: BTreeMap<(String, String), (i64, bool)> = BTreeMap::new();
        for r in &results {
            let QueryResult::Cells { cells: theirs } = r else {
                continue;
            };
            for c in theirs {
                let e = cells
                    .entry((c.age_band.clone(), c.sex.clone()))
                    .or_insert((0, false));
                match c.count {
                    Some(n) => e.0 += n,
                    None => e.1 = true,
                }
            }
        }
        Combined::Cells {
            cells: cells
                .into_iter()
                .map(|((age_band, sex), (count, suppressed))| CombinedCell {
                    age_band,
                    sex,
                    count,
                    suppressed_at_some_holder: suppressed,
                })
                .collect(),
        }
    } else {
        let (mut count, mut sum, mut suppressed) = (0i64, 0f64, 0u64);
        for r in &results {
            match r {
                QueryResult::Stats(Stats {
                    count: c,
                    mean: Some(m),
                    ..
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

    #[test]
    fn queries_parse_with_clear_errors_and_costs() {
        let q = Query::parse(r#"{"kind":"condition-count","system":"http://snomed.info/sct","code":"44054006","epsilon":null,"pinnedBlock":7}"#).unwrap();
        assert_eq!((q.cost(), q.pinned_block()), (1, 7));
        let q = Query::parse(r#"{"kind":"condition-count","system":"http://hl7.org/fhir/sid/icd-10-cm","code":"E11.9","epsilon":null,"pinnedBlock":7}"#).unwrap();
        assert_eq!(q.cost(), 1);
        let q = Query::parse(r#"{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":0.25,"pinnedBlock":1}"#).unwrap();
        assert_eq!(q.cost(), 250_000);
        for (bad, why) in [
            (
                r#"{"kind":"condition-count","system":"http://loinc.org","code":"1","epsilon":null,"pinnedBlock":1}"#,
                "unknown code system",
            ),
            (
                r#"{"kind":"condition-count","system":"http://snomed.info/sct","code":"1; DROP","epsilon":null,"pinnedBlock":1}"#,
                "malformed code",
            ),
            (
                r#"{"kind":"observation-stats","system":"http://loinc.org","code":"718-7","epsilon":-1,"pinnedBlock":1}"#,
                "epsilon",
            ),
            (
                r#"{"kind":"median","system":"http://loinc.org","code":"718-7","pinnedBlock":1}"#,
                "malformed query",
            ),
            ("not json", "malformed query"),
        ] {
            let e = Query::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_cost_is_epsilon_in_millionths_rounded_up_and_at_least_one() {
        for (eps, want) in [
            (None, 1),
            (Some(1e-9), 1),
            (Some(0.000_001), 1),
            (Some(0.000_001_5), 2),
            (Some(0.1), 100_000),
            (Some(0.25), 250_000),
            (Some(1.0), 1_000_000),
            (Some(10.0), 10_000_000),
        ] {
            assert_eq!(cost(eps), want, "{eps:?}");
        }
    }

    #[test]
    fn the_query_text_has_sorted_keys_so_every_client_hashes_the_same() {
        let q = Query::ConditionCount {
            system: SNOMED.into(),
            code: "44054006".into(),
            epsilon: None,
            pinned_block: 12,
        };
        // The text the CLI has always sent (and the tests and other clients build with a
        // JSON object whose keys sort).
        let text = json!({"kind": "condition-count", "system": SNOMED, "code": "44054006",
                          "epsilon": null, "pinnedBlock": 12})
        .to_string();
        assert_eq!(
            text,
            r#"{"code":"44054006","epsilon":null,"kind":"condition-count","pinnedBlock":12,"system":"http://snomed.info/sct"}"#
        );
        assert_eq!(q.text(), text);
        assert_eq!(q.hash(), keccak256(text.as_bytes()));
        assert_eq!(Query::parse(&text).unwrap(), q);
        let q = Query::ObservationStats {
            system: LOINC.into(),
            code: "718-7".into(),
            epsilon: Some(0.5),
            pinned_block: 3,
        };
        assert_eq!(
            q.text(),
            r#"{"code":"718-7","epsilon":0.5,"kind":"observation-stats","pinnedBlock":3,"system":"http://loinc.org"}"#
        );
        assert_eq!(condition_system("icd10-cm"), Some(ICD10CM));
        assert_eq!(condition_system("read-v2"), None);
    }

    #[test]
    fn answers_round_trip_in_canonical_form() {
        let text = r#"{"holder":"0x1111111111111111111111111111111111111111","minCellSize":5,"pinnedBlock":9,"queryHash":"0x2222222222222222222222222222222222222222222222222222222222222222","result":{"cells":[{"ageBand":"18-39","count":7,"sex":"female"},{"ageBand":"40-64","sex":"male","suppressed":true}]},"studyId":"0x1"}"#;
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
            r#"{"count":12,"mean":13.5,"median":13.0,"q1":12.25,"q3":14.0}"#,
            r#"{"count":0,"mean":null,"median":null,"q1":null,"q3":null}"#,
        ] {
            let r: QueryResult = serde_json::from_str(result).unwrap();
            assert_eq!(canonical_json(&r).unwrap(), result);
        }
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
            cells: vec![Cell::new("18-39".into(), "female".into(), 6, 5)],
        };
        let c = combine([&a, &b]);
        assert_eq!(
            canonical_json(&c).unwrap(),
            r#"{"cells":[{"ageBand":"18-39","count":13,"sex":"female","suppressedAtSomeHolder":false},{"ageBand":"40-64","count":0,"sex":"male","suppressedAtSomeHolder":true}]}"#
        );
        let s = |count, mean| {
            QueryResult::Stats(Stats {
                count,
                mean,
                q1: None,
                median: None,
                q3: None,
            })
        };
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
