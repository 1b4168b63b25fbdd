//! A query evaluated over this holder's coded facts, in two steps: [`tally`] reads the exact
//! figures of the consenting patients from the records of the study's categories (never
//! released), and [`release`] turns them into what may leave the holder, every number
//! noised ([`dp`](super::dp)) for the epsilon the query pays.
//!
//! Each patient contributes a bounded amount (see docs/research-privacy.md):
//! - a condition count counts a patient once, in the one cell of the domain (age band by sex)
//!   their latest demographics of the study's categories place them in, so one patient more
//!   or less moves one cell by one (sensitivity 1 for the whole table);
//! - an observation takes one value per patient, the mean of their values each clamped to
//!   the query's bounds, rounded to a step from `-VALUE_HALF_GRID` to `VALUE_HALF_GRID`; the
//!   count moves by one and the sum of steps by at most `VALUE_HALF_GRID`, and each gets half
//!   the epsilon.
//!
//! Every cell of the domain is released, noised; one whose noised count is under the study's
//! minimum is held back. Whether a cell is shown depends only on its noised count, so an empty
//! cell and a small one look alike.

use super::dp;
use alloy::primitives::Address;
use medrec_protocol::research::{
    AGE_BANDS, CELLS, Cell, Query, QueryResult, SEXES, Stats, VALUE_HALF_GRID, age_band, domain,
    sex_cell,
};
use rand::{CryptoRng, Rng};
use sqlx::{PgPool, Row};
use std::collections::HashSet;

/// A query's exact figures at this holder: what is noised, never what is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// A condition count: patients per cell, in [`AGE_BANDS`] then [`SEXES`] order.
    Cells(Vec<i64>),
    /// An observation: each patient's clamped value as a step in
    /// `[-VALUE_HALF_GRID, VALUE_HALF_GRID]` about the bounds' midpoint.
    Values(Vec<i64>),
}

/// The category numbers of a study's category mask.
pub fn categories_of(mask: u64) -> Vec<i16> {
    (0..64).filter(|b| mask >> b & 1 == 1).collect()
}

/// The index of a cell in the domain's order.
fn cell_index(band: &str, sex: &str) -> usize {
    let b = AGE_BANDS.iter().position(|x| *x == band).unwrap_or(0);
    let s = SEXES.iter().position(|x| *x == sex).unwrap_or(0);
    b * SEXES.len() + s
}

/// A value as a step of the grid over `[lower, upper]`.
pub fn step(value: f64, lower: f64, upper: f64) -> i64 {
    let mid = lower / 2.0 + upper / 2.0;
    let unit = (upper - lower) / (2 * VALUE_HALF_GRID) as f64;
    let v = value.clamp(lower, upper);
    (((v - mid) / unit).round() as i64).clamp(-VALUE_HALF_GRID, VALUE_HALF_GRID)
}

/// The exact figures of `query` over the facts of `patients` in records of `categories`
/// (a study's mask), ages taken at `timestamp` (the pinned block's).
pub async fn tally(
    pool: &PgPool,
    query: &Query,
    patients: &HashSet<Address>,
    timestamp: i64,
    categories: u64,
) -> Result<Tally, sqlx::Error> {
    let categories = categories_of(categories);
    // Only the consenting patients' facts count (the set is the chain's, at the pinned block).
    let consenting = |row: &sqlx::postgres::PgRow| {
        let who: Vec<u8> = row.get("patient");
        who.len() == 20 && patients.contains(&Address::from_slice(&who))
    };
    Ok(match query {
        Query::ConditionCount { system, code, .. } => {
            // Each patient once, placed by their latest demographics from a record of the
            // study's categories (none: the unknown cell).
            let rows = sqlx::query(
                "SELECT f.patient, d.gender,
                        date_part('year', age(to_timestamp($4)::date, d.birth_date))::int8 AS years
                 FROM (SELECT DISTINCT patient FROM gk_facts
                       WHERE kind = 'condition' AND system = $1 AND code = $2
                         AND category = ANY($3)) f
                 LEFT JOIN LATERAL (
                     SELECT gender, birth_date FROM gk_demographics d
                     WHERE d.patient = f.patient AND d.category = ANY($3)
                     ORDER BY d.seq DESC LIMIT 1) d ON true",
            )
            .bind(system)
            .bind(code)
            .bind(&categories)
            .bind(timestamp as f64)
            .fetch_all(pool)
            .await?;
            let mut cells = vec![0i64; CELLS];
            for row in rows.iter().filter(|r| consenting(r)) {
                let gender: Option<String> = row.get("gender");
                let years: Option<i64> = row.get("years");
                cells[cell_index(age_band(years), sex_cell(gender.as_deref()))] += 1;
            }
            Tally::Cells(cells)
        }
        Query::ObservationStats {
            system,
            code,
            lower,
            upper,
            ..
        } => {
            // One value per patient: the mean of theirs, each clamped first (so that no sum
            // of extreme values can overflow into an error that only some patients cause).
            let rows = sqlx::query(
                "SELECT patient, avg(LEAST(GREATEST(value, $4), $5)) AS value FROM gk_facts
                 WHERE kind = 'observation' AND system = $1 AND code = $2
                   AND value IS NOT NULL AND category = ANY($3)
                 GROUP BY patient",
            )
            .bind(system)
            .bind(code)
            .bind(&categories)
            .bind(lower)
            .bind(upper)
            .fetch_all(pool)
            .await?;
            Tally::Values(
                rows.iter()
                    .filter(|r| consenting(r))
                    .map(|row| step(row.get::<f64, _>("value"), *lower, *upper))
                    .collect(),
            )
        }
    })
}

/// A cell of `n` patients as released: noised for `epsilon = num / den`, held back (None)
/// when the noised count is under `min`.
pub fn noised_cell<R: Rng + CryptoRng>(
    n: i64,
    num: u64,
    den: u64,
    min: i64,
    rng: &mut R,
) -> Option<i64> {
    let noised = n + dp::noise(rng, 1, num, den);
    (noised >= min).then_some(noised)
}

/// What may leave the holder: every figure of `tally` noised for this holder's share of the
/// query's epsilon, a count under `min` held back.
pub fn release<R: Rng + CryptoRng>(
    tally: &Tally,
    query: &Query,
    min: i64,
    rng: &mut R,
) -> QueryResult {
    let (num, den) = query.holder_epsilon();
    match (tally, query) {
        (Tally::Cells(counts), _) => QueryResult::Cells {
            cells: domain()
                .zip(counts)
                .map(|((band, sex), n)| {
                    let count = noised_cell(*n, num, den, min, rng);
                    Cell {
                        age_band: band.to_string(),
                        sex: sex.to_string(),
                        count,
                        suppressed: count.is_none(),
                    }
                })
                .collect(),
        },
        (Tally::Values(steps), Query::ObservationStats { lower, upper, .. }) => {
            // Half the epsilon for the count, half for the sum.
            let count = steps.len() as i64 + dp::noise(rng, 1, num, 2 * den);
            let sum =
                steps.iter().sum::<i64>() + dp::noise(rng, VALUE_HALF_GRID as u64, num, 2 * den);
            if count < min.max(1) {
                return QueryResult::Suppressed { suppressed: true };
            }
            let unit = (upper - lower) / (2 * VALUE_HALF_GRID) as f64;
            let mid = lower / 2.0 + upper / 2.0;
            let mean = (mid + sum as f64 / count as f64 * unit).clamp(*lower, *upper);
            QueryResult::Stats(Stats {
                count,
                mean: Some(mean),
            })
        }
        (Tally::Values(_), Query::ConditionCount { .. }) => {
            QueryResult::Suppressed { suppressed: true }
        }
    }
}

/// The figures of `query` as they leave the holder: [`tally`] then [`release`] with noise from
/// the operating system's secure source.
pub async fn evaluate(
    pool: &PgPool,
    query: &Query,
    patients: &HashSet<Address>,
    timestamp: i64,
    categories: u64,
    min: i64,
) -> Result<QueryResult, sqlx::Error> {
    let t = tally(pool, query, patients, timestamp, categories).await?;
    Ok(release(&t, query, min, &mut dp::fresh_rng()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_protocol::research::{LOINC, SNOMED};
    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use std::collections::BTreeMap;

    fn holders(n: u8) -> Vec<Address> {
        (1..=n).map(Address::repeat_byte).collect()
    }

    fn condition(epsilon: f64, n: u8) -> Query {
        Query::ConditionCount {
            system: SNOMED.into(),
            code: "44054006".into(),
            epsilon,
            holders: holders(n),
            pinned_block: 1,
        }
    }

    fn observation(epsilon: f64) -> Query {
        Query::ObservationStats {
            system: LOINC.into(),
            code: "4548-4".into(),
            epsilon,
            lower: 4.0,
            upper: 14.0,
            holders: holders(1),
            pinned_block: 1,
        }
    }

    /// The released count of cell `i` (None: held back).
    fn shown(r: &QueryResult, i: usize) -> Option<i64> {
        match r {
            QueryResult::Cells { cells } => cells[i].count,
            _ => panic!("cells"),
        }
    }

    /// How often each outcome came out of `runs` releases of `tally`.
    fn outcomes(
        tally: &Tally,
        q: &Query,
        min: i64,
        runs: usize,
        seed: u64,
        what: impl Fn(&QueryResult) -> Option<i64>,
    ) -> BTreeMap<Option<i64>, usize> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut seen = BTreeMap::new();
        for _ in 0..runs {
            *seen
                .entry(what(&release(tally, q, min, &mut rng)))
                .or_default() += 1;
        }
        seen
    }

    /// Every outcome seen at least `floor` times under either tally has frequencies whose
    /// ratio stays within e^epsilon, with room for sampling error; an outcome common under
    /// one and rare or absent under the other (the shape of a leak) fails. Returns how many
    /// outcomes were compared.
    fn within_e_epsilon(
        a: &BTreeMap<Option<i64>, usize>,
        b: &BTreeMap<Option<i64>, usize>,
        epsilon: f64,
        floor: usize,
    ) -> usize {
        let mut compared = 0;
        for k in a
            .keys()
            .chain(b.keys())
            .collect::<std::collections::BTreeSet<_>>()
        {
            let (na, nb) = (*a.get(k).unwrap_or(&0), *b.get(k).unwrap_or(&0));
            if na < floor && nb < floor {
                continue;
            }
            // Counts smoothed by one, so that an outcome never seen on one side still gives a
            // finite ratio; the log of the ratio has a standard error of about
            // sqrt(1/na + 1/nb): four of them are allowed for sampling.
            let (na, nb) = ((na + 1) as f64, (nb + 1) as f64);
            let ratio = na / nb;
            let bound = (epsilon + 4.0 * (1.0 / na + 1.0 / nb).sqrt()).exp();
            assert!(
                ratio <= bound && 1.0 / ratio <= bound,
                "outcome {k:?}: {na} vs {nb} draws, ratio {ratio:.3} beyond e^{epsilon} = {:.3}",
                epsilon.exp()
            );
            compared += 1;
        }
        compared
    }

    #[test]
    fn every_cell_of_the_domain_is_released_noised_and_small_ones_held_back() {
        let mut counts = vec![0i64; 20];
        counts[cell_index("40-64", "female")] = 400;
        counts[cell_index("65+", "male")] = 2;
        let q = condition(1.0, 1);
        let r = release(&Tally::Cells(counts), &q, 10, &mut StdRng::seed_from_u64(1));
        let QueryResult::Cells { cells } = &r else {
            panic!("cells")
        };
        assert_eq!(cells.len(), 20);
        let order: Vec<(&str, &str)> = cells
            .iter()
            .map(|c| (c.age_band.as_str(), c.sex.as_str()))
            .collect();
        assert_eq!(order[0], ("0-17", "female"));
        assert_eq!(order[19], ("unknown", "unknown"));
        let big = shown(&r, cell_index("40-64", "female")).unwrap();
        assert!((big - 400).abs() < 15, "{big}");
        assert!(cells.iter().filter(|c| c.suppressed).count() >= 18);
    }

    #[test]
    fn absent_and_small_cells_are_told_apart_no_better_than_epsilon_allows() {
        // A cell with no patient against the same cell with one: how often it is shown, and
        // with which count, must differ by at most e^epsilon. 400,000 runs each give every
        // outcome with a probability of 0.25% or more at least 1,000 draws.
        let (num, den) = condition(1.0, 1).holder_epsilon();
        let cell = |n: i64, min: i64, seed: u64| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut seen = BTreeMap::new();
            for _ in 0..400_000 {
                *seen
                    .entry(noised_cell(n, num, den, min, &mut rng))
                    .or_default() += 1;
            }
            seen
        };
        for min in [1, 2, 5] {
            let a = cell(0, min, 21);
            let b = cell(1, min, 22);
            let compared = within_e_epsilon(&a, &b, 1.0, 1_000);
            assert!(compared >= 2, "min {min}: {compared} outcomes compared");
            // Held back is an outcome like any other: it must appear under both.
            assert!(a.contains_key(&None) && b.contains_key(&None));
        }
    }

    #[test]
    fn a_patients_observation_value_does_not_show_in_the_mean() {
        // Neighbouring cohorts: 30 patients, and the same 30 with one more whose value is at
        // the top of the bounds. The released mean, rounded to a tenth, stays within
        // e^epsilon of itself across the two, as does the count.
        let q = observation(1.0);
        let base: Vec<i64> = (0..30)
            .map(|i| step(6.0 + i as f64 * 0.1, 4.0, 14.0))
            .collect();
        let mut plus = base.clone();
        plus.push(step(14.0, 4.0, 14.0));
        let mean_tenths = |r: &QueryResult| match r {
            QueryResult::Stats(Stats { mean: Some(m), .. }) => Some((m * 10.0).round() as i64),
            _ => None,
        };
        let count = |r: &QueryResult| match r {
            QueryResult::Stats(Stats { count, .. }) => Some(*count),
            _ => None,
        };
        let (a, b) = (Tally::Values(base), Tally::Values(plus));
        let ma = outcomes(&a, &q, 5, 400_000, 31, mean_tenths);
        let mb = outcomes(&b, &q, 5, 400_000, 32, mean_tenths);
        assert!(within_e_epsilon(&ma, &mb, 1.0, 1_000) >= 3);
        let ca = outcomes(&a, &q, 5, 400_000, 33, count);
        let cb = outcomes(&b, &q, 5, 400_000, 34, count);
        assert!(within_e_epsilon(&ca, &cb, 1.0, 1_000) >= 3);
    }

    #[test]
    fn means_come_from_clamped_noised_sums_and_quartiles_are_gone() {
        // 2,000 patients at 7.0 and one at 1,000 (clamped to 14): the mean is about 7.
        let mut steps = vec![step(7.0, 4.0, 14.0); 2_000];
        steps.push(step(1_000.0, 4.0, 14.0));
        assert_eq!(step(1_000.0, 4.0, 14.0), VALUE_HALF_GRID);
        assert_eq!(step(-3.0, 4.0, 14.0), -VALUE_HALF_GRID);
        assert_eq!(step(9.0, 4.0, 14.0), 0);
        let r = release(
            &Tally::Values(steps),
            &observation(1.0),
            10,
            &mut StdRng::seed_from_u64(5),
        );
        let QueryResult::Stats(Stats {
            count,
            mean: Some(m),
        }) = r
        else {
            panic!("{r:?}")
        };
        assert!((count - 2_001).abs() < 20, "{count}");
        assert!((m - 7.0).abs() < 0.1, "{m}");
        // Under the minimum: held back whole.
        let few = release(
            &Tally::Values(vec![0; 2]),
            &observation(1.0),
            10,
            &mut StdRng::seed_from_u64(5),
        );
        assert_eq!(few, QueryResult::Suppressed { suppressed: true });
    }

    #[test]
    fn holders_share_the_epsilon() {
        // Two holders at epsilon 1 each noise at 1/2: the mean absolute noise of a discrete
        // Laplace of scale 1/a is 2e^-a / (1 - e^-2a): 0.851 at a = 1, 1.919 at a = 1/2.
        let counts = Tally::Cells(vec![1_000; 20]);
        let spread = |q: &Query| {
            let mut rng = StdRng::seed_from_u64(9);
            let runs = 20_000;
            (0..runs)
                .map(|_| (shown(&release(&counts, q, 1, &mut rng), 0).unwrap() - 1_000).abs())
                .sum::<i64>() as f64
                / runs as f64
        };
        let (one, two) = (spread(&condition(1.0, 1)), spread(&condition(1.0, 2)));
        let mad = |a: f64| 2.0 * (-a).exp() / (1.0 - (-2.0 * a).exp());
        assert!((one / mad(1.0) - 1.0).abs() < 0.05, "{one}");
        assert!((two / mad(0.5) - 1.0).abs() < 0.05, "{two}");
        assert_eq!(categories_of(0b100001), vec![0, 5]);
    }
}
