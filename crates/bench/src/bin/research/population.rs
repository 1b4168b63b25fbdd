//! The simulated population: patients' facts drawn from a seed, written into a holder's
//! database as a record upload would write them, and the answers they must give.

use alloy::primitives::{Address, keccak256};
use alloy::signers::local::PrivateKeySigner;
use jiff::civil::Date;
use medrec_protocol::research::{LOINC, SNOMED};
use rand::Rng;
use serde_json::Value;
use std::collections::BTreeMap;

/// The age band the gatekeeper reports for a birth date on a day.
pub fn band(birth: Date, on: Date) -> &'static str {
    let before_birthday = (on.month(), on.day()) < (birth.month(), birth.day());
    let age = i32::from(on.year()) - i32::from(birth.year()) - i32::from(before_birthday);
    match age {
        ..18 => "0-17",
        18..40 => "18-39",
        40..65 => "40-64",
        _ => "65+",
    }
}

/// The day (UTC) of a unix time.
pub fn day_of(unix_secs: u64) -> Date {
    jiff::Timestamp::from_second(unix_secs as i64)
        .expect("a block time within jiff's range")
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// The study's smallest reported cell.
pub const MIN_CELL: u32 = 10;
/// The categories the facts are written under: demographics, conditions and labs (the
/// study is approved for all three).
pub const DEMOGRAPHICS: i16 = 0;
/// Conditions' category.
pub const CONDITIONS_CATEGORY: i16 = 5;
/// Observations' category (labs).
pub const LABS: i16 = 3;
/// The epsilon of each query: ten of them spend the study's budget of 10.
pub const EPSILON: f64 = 1.0;
/// How far a noised cell of the two holders together may be from the truth: each holder's
/// noise has scale 2 (epsilon 1/2 each); 50 is beyond 12 scales.
const CELL_SLACK: i64 = 50;

/// An observation's clamping bounds: four standard deviations either side of its mean.
pub fn bounds(code: &str) -> (f64, f64) {
    let (_, mean, sd) = OBSERVATIONS.iter().find(|(c, ..)| *c == code).unwrap();
    (mean - 4.0 * sd, mean + 4.0 * sd)
}
/// Type 2 diabetes, essential hypertension.
pub const CONDITIONS: [(&str, f64); 2] = [("44054006", 0.15), ("59621000", 0.30)];
/// Haemoglobin A1c, haemoglobin.
pub const OBSERVATIONS: [(&str, f64, f64); 2] = [("4548-4", 5.9, 0.9), ("718-7", 13.8, 1.4)];

/// One simulated patient's facts.
pub struct Patient {
    pub address: Address,
    pub female: bool,
    pub birth: Date,
    pub conditions: Vec<&'static str>,
    pub observations: Vec<(&'static str, f64)>,
}

pub fn simulate(i: usize, rng: &mut rand::rngs::StdRng) -> Patient {
    let key = keccak256(format!("medrec research bench patient {i}"));
    let address = PrivateKeySigner::from_bytes(&key).unwrap().address();
    // Drawn as before (i64, u32, u32), so a seed gives the same population.
    let year: i64 = rng.gen_range(1930..2020);
    let month: u32 = rng.gen_range(1..=12);
    let day: u32 = rng.gen_range(1..=28);
    let birth = jiff::civil::date(year as i16, month as i8, day as i8);
    let conditions = CONDITIONS
        .iter()
        .filter(|(_, p)| rng.gen_bool(*p))
        .map(|(c, _)| *c)
        .collect();
    let observations = OBSERVATIONS
        .iter()
        .map(|(c, mean, sd)| {
            // A sum of uniforms: close enough to normal for a benchmark.
            let z: f64 = (0..12).map(|_| rng.r#gen::<f64>()).sum::<f64>() - 6.0;
            (*c, ((mean + sd * z) * 10.0).round() / 10.0)
        })
        .collect();
    Patient {
        address,
        female: rng.gen_bool(0.5),
        birth,
        conditions,
        observations,
    }
}

/// Writes the facts a record upload would write, in chunks.
pub async fn load_facts(db_url: &str, patients: &[&Patient]) {
    let pool = sqlx::PgPool::connect(db_url).await.unwrap();
    // The gatekeeper has migrated its database before this is called.
    for chunk in patients.chunks(10_000) {
        let addrs: Vec<Vec<u8>> = chunk.iter().map(|p| p.address.to_vec()).collect();
        let genders: Vec<&str> = chunk
            .iter()
            .map(|p| if p.female { "female" } else { "male" })
            .collect();
        let births: Vec<String> = chunk.iter().map(|p| p.birth.to_string()).collect();
        let demographic_records: Vec<Vec<u8>> = chunk
            .iter()
            .map(|p| keccak256(format!("{} demographics", p.address)).to_vec())
            .collect();
        sqlx::query(
            "INSERT INTO gk_demographics (record_id, patient, category, gender, birth_date)
             SELECT r, p, $5, g, b::date
             FROM unnest($1::bytea[], $2::bytea[], $3::text[], $4::text[]) AS t(r, p, g, b)",
        )
        .bind(&demographic_records)
        .bind(&addrs)
        .bind(&genders)
        .bind(&births)
        .bind(DEMOGRAPHICS)
        .execute(&pool)
        .await
        .unwrap();
        let (mut rid, mut who, mut category, mut kind, mut system, mut code, mut value) =
            (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
        for p in chunk {
            let facts = p
                .conditions
                .iter()
                .map(|c| ("condition", SNOMED, *c, None))
                .chain(
                    p.observations
                        .iter()
                        .map(|(c, v)| ("observation", LOINC, *c, Some(*v))),
                );
            for (k, s, c, v) in facts {
                rid.push(keccak256(format!("{}{c}", p.address)).to_vec());
                who.push(p.address.to_vec());
                category.push(if k == "condition" {
                    CONDITIONS_CATEGORY
                } else {
                    LABS
                });
                kind.push(k);
                system.push(s);
                code.push(c);
                value.push(v);
            }
        }
        sqlx::query(
            "INSERT INTO gk_facts (record_id, patient, category, kind, system, code, value)
             SELECT * FROM unnest($1::bytea[], $2::bytea[], $3::int2[], $4::text[], $5::text[],
                                  $6::text[], $7::float8[])",
        )
        .bind(&rid)
        .bind(&who)
        .bind(&category)
        .bind(&kind)
        .bind(&system)
        .bind(&code)
        .bind(&value)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();
    pool.close().await;
}

/// Checks a combined, noised answer against the consenting patients' facts: every cell of
/// the domain, each within the noise's reach of the truth; a cell well above the minimum at
/// both holders is never held back; the observation's count and mean close to the truth.
pub fn check(consenting: &[Patient], flag: &str, code: &str, ts: u64, combined: &Value) {
    if flag == "--condition" {
        let today = day_of(ts);
        let mut per_holder: [BTreeMap<(String, String), i64>; 2] = Default::default();
        for (i, p) in consenting.iter().enumerate() {
            if p.conditions.contains(&code) {
                let sex = if p.female { "female" } else { "male" };
                *per_holder[i % 2]
                    .entry((band(p.birth, today).to_string(), sex.to_string()))
                    .or_default() += 1;
            }
        }
        let cells = combined["cells"].as_array().unwrap();
        assert_eq!(
            cells.len(),
            20,
            "condition {code}: every cell of the domain"
        );
        for c in cells {
            let key = (
                c["ageBand"].as_str().unwrap().to_string(),
                c["sex"].as_str().unwrap().to_string(),
            );
            let (a, b) = (
                *per_holder[0].get(&key).unwrap_or(&0),
                *per_holder[1].get(&key).unwrap_or(&0),
            );
            let got = c["count"].as_i64().unwrap();
            let held_back = c["suppressedAtSomeHolder"].as_bool().unwrap();
            let far = i64::from(MIN_CELL) + CELL_SLACK;
            assert!(
                !(held_back && a >= far && b >= far),
                "condition {code}, {key:?}: held back though {a} and {b} patients"
            );
            if held_back {
                assert!(
                    got <= a + b + CELL_SLACK,
                    "condition {code}, {key:?}: {got}"
                );
            } else {
                assert!(
                    (got - a - b).abs() <= CELL_SLACK,
                    "condition {code}, {key:?}: {got} is not near {}",
                    a + b
                );
            }
        }
    } else {
        let (lower, upper) = bounds(code);
        let values: Vec<f64> = consenting
            .iter()
            .flat_map(|p| p.observations.iter().filter(|(c, _)| *c == code))
            .map(|(_, v)| v.clamp(lower, upper))
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let count = combined["count"].as_i64().unwrap();
        assert!(
            (count - values.len() as i64).abs() <= 2 * CELL_SLACK,
            "observation {code}: the count {count} is not near {}",
            values.len()
        );
        let got = combined["mean"].as_f64().unwrap();
        assert!(
            (got - mean).abs() < (upper - lower) / 200.0,
            "observation {code}: mean {got} is not near {mean}"
        );
    }
}
