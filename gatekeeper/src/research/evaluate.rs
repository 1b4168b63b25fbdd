//! A query evaluated over this holder's coded facts: only the consenting patients' facts
//! count, cells under the study's minimum are suppressed, and Laplace noise is added to
//! counts when the query asks for epsilon.

use alloy::primitives::Address;
use medrec_protocol::research::{Cell, Query, QueryResult, Stats};
use rand::Rng;
use sqlx::{PgPool, Row};
use std::collections::{BTreeMap, HashSet};

/// The figures of `query` over the facts of `patients`, ages taken at `timestamp` (the pinned
/// block's), cells under `min` suppressed.
pub async fn evaluate(
    pool: &PgPool,
    query: &Query,
    patients: &HashSet<Address>,
    timestamp: i64,
    min: i64,
) -> Result<QueryResult, sqlx::Error> {
    // The facts with the asked code come from the database; only the consenting patients'
    // are kept (the set is the chain's, at the pinned block).
    let consenting = |row: &sqlx::postgres::PgRow| {
        let who: Vec<u8> = row.get("patient");
        who.len() == 20 && patients.contains(&Address::from_slice(&who))
    };
    Ok(match query {
        Query::ConditionCount {
            system,
            code,
            epsilon,
            ..
        } => {
            let rows = sqlx::query(
                "SELECT DISTINCT f.patient,
                        CASE WHEN p.birth_date IS NULL THEN 'unknown'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 18 THEN '0-17'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 40 THEN '18-39'
                             WHEN date_part('year', age(to_timestamp($3)::date, p.birth_date)) < 65 THEN '40-64'
                             ELSE '65+' END AS band,
                        COALESCE(p.gender, 'unknown') AS sex
                 FROM gk_facts f LEFT JOIN gk_patients p ON p.patient = f.patient
                 WHERE f.kind = 'condition' AND f.system = $1 AND f.code = $2",
            )
            .bind(system)
            .bind(code)
            .bind(timestamp as f64)
            .fetch_all(pool)
            .await?;
            let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
            for row in rows.iter().filter(|r| consenting(r)) {
                *counts.entry((row.get("band"), row.get("sex"))).or_default() += 1;
            }
            QueryResult::Cells {
                cells: counts
                    .into_iter()
                    .map(|((band, sex), n)| Cell::new(band, sex, noisy(n, *epsilon), min))
                    .collect(),
            }
        }
        Query::ObservationStats {
            system,
            code,
            epsilon,
            ..
        } => {
            let rows = sqlx::query(
                "SELECT patient, value FROM gk_facts
                 WHERE kind = 'observation' AND system = $1 AND code = $2 AND value IS NOT NULL",
            )
            .bind(system)
            .bind(code)
            .fetch_all(pool)
            .await?;
            let mut values: Vec<f64> = rows
                .iter()
                .filter(|r| consenting(r))
                .map(|row| row.get::<f64, _>("value"))
                .collect();
            values.sort_by(f64::total_cmp);
            let n = noisy(values.len() as i64, *epsilon);
            if n < min {
                QueryResult::Suppressed { suppressed: true }
            } else {
                QueryResult::Stats(Stats {
                    count: n,
                    mean: (!values.is_empty())
                        .then(|| values.iter().sum::<f64>() / values.len() as f64),
                    q1: percentile(&values, 0.25),
                    median: percentile(&values, 0.5),
                    q3: percentile(&values, 0.75),
                })
            }
        }
    })
}

/// `percentile_cont`: the value at fraction `p` of sorted `v`, interpolated between neighbours.
fn percentile(v: &[f64], p: f64) -> Option<f64> {
    let last = v.len().checked_sub(1)?;
    let pos = p * last as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(v[lo] + (pos - lo as f64) * (v[hi] - v[lo]))
}

fn laplace(scale: f64) -> f64 {
    let u: f64 = rand::thread_rng().gen_range(-0.5..0.5);
    -scale * u.signum() * (1.0 - 2.0 * u.abs()).ln()
}

fn noisy(count: i64, epsilon: Option<f64>) -> i64 {
    match epsilon {
        Some(e) => (count as f64 + laplace(1.0 / e)).round().max(0.0) as i64,
        None => count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_centred_and_only_when_asked() {
        assert_eq!(noisy(42, None), 42);
        let n = 20_000;
        let mean = (0..n).map(|_| noisy(1_000, Some(0.5)) as f64).sum::<f64>() / n as f64;
        // Laplace(1/epsilon = 2) has standard deviation about 2.8: the mean of 20,000 draws is
        // within a few hundredths of the count.
        assert!((mean - 1_000.0).abs() < 0.2, "mean {mean}");
        let spread = (0..n).filter(|_| noisy(1_000, Some(0.5)) != 1_000).count();
        assert!(spread > n / 2, "noise was added");
        assert!(
            (0..1_000).all(|_| noisy(0, Some(0.1)) >= 0),
            "counts never go negative"
        );
    }

    #[test]
    fn percentiles_interpolate_like_postgres() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), Some(2.5));
        assert_eq!(percentile(&v, 0.25), Some(1.75));
        assert_eq!(percentile(&v, 0.75), Some(3.25));
        assert_eq!(percentile(&[7.0], 0.25), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
