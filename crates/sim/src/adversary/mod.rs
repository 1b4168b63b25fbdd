//! `medrec-sim adversary`: what a consortium member, node operator or indexer operator learns
//! about each patient from the whole chain and the indexer's database (issue 16).
//!
//! It reads every log of the deployment's four registries (`eth_getLogs`), the input of every
//! transaction sent to them (each block's transactions, reverted ones included: a refused
//! call discloses as much as one that passed), the registries' public views for every pair of
//! patient and provider it saw, and, given `--database-url`, every table of the indexer's
//! database that has a `patient` column (read-only SQL). From those it tries to recover, per
//! patient: record categories at each holder (also from the order of one patient's anchors in
//! one transaction; the pointers' locators of another than the default shape are reported),
//! grantees with their scope, purpose and period,
//! guardians, break-glass openings and rules, studies joined, cross-holder links (one account
//! known at two holders or more, or accounts at different holders whose gas or ether one
//! payer provides, a relayer for a few accounts being one person or household) and, given
//! `--candidates`, a known record's content by hash
//! guessing (SHA-256 of each candidate file, looked up among content hashes, and record ids
//! recomputed for every patient and holder seen).
//!
//! Today it recovers nearly everything: that is the baseline (`--report-only`, exit 0). Once
//! the privacy design of issue 16 is in, `--expect-nothing` fails (exit 1) when anything is
//! recovered; that is the check CI is meant to run then.

mod chain;
mod indexer_db;
mod order;

use crate::{Args, Fail, Result, input, io};
use alloy::primitives::{Address, B256};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What the adversary reads and how it judges the outcome.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["report_only", "expect_nothing"])))]
pub struct AdversaryArgs {
    /// The indexer's PostgreSQL database, read with read-only SQL (every table with a
    /// `patient` column)
    #[arg(long, env = "MEDREC_ADVERSARY_DATABASE_URL")]
    database_url: Option<String>,
    /// Folders of candidate records (FHIR JSON files, searched recursively) to confirm by
    /// their hashes; comma-separated or repeated
    #[arg(long, value_delimiter = ',')]
    candidates: Vec<PathBuf>,
    /// Report what is recovered and exit 0 (today's baseline)
    #[arg(long)]
    report_only: bool,
    /// Exit 1 when anything at all is recovered (what CI runs once issue 16 lands)
    #[arg(long)]
    expect_nothing: bool,
    /// Print the report as one JSON document instead of text
    #[arg(long)]
    json: bool,
    /// Patients listed one by one in the text report, at most (the summary counts them all)
    #[arg(long, default_value_t = 20)]
    show_patients: usize,
}

/// The kinds of fact the adversary tries to recover about a patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A record of a category at a holder.
    Category,
    /// A grantee, with the grant's categories, purpose and period.
    Grantee,
    /// A guardian, with their scope and period.
    Guardian,
    /// A break-glass opening (provider and block) or the patient's break-glass rule.
    Emergency,
    /// A study the patient joined.
    Study,
    /// The same patient known at two holders or more.
    Link,
    /// A record's content, confirmed by hashing a candidate file.
    Content,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Category,
        Kind::Grantee,
        Kind::Guardian,
        Kind::Emergency,
        Kind::Study,
        Kind::Link,
        Kind::Content,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Category => "categories",
            Kind::Grantee => "grantees",
            Kind::Guardian => "guardians",
            Kind::Emergency => "emergencies",
            Kind::Study => "studies",
            Kind::Link => "cross-holder links",
            Kind::Content => "contents by hash",
        }
    }
}

/// Where a fact was read.
pub type Source = &'static str;
/// Read from a registry's event logs.
pub const LOGS: Source = "logs";
/// Decoded from a transaction's input.
pub const CALLDATA: Source = "calldata";
/// Answered by a registry's view function.
pub const VIEWS: Source = "views";
/// Read from the indexer's database.
pub const INDEXER_DB: Source = "indexer db";
/// Derived from other facts.
pub const DERIVED: Source = "derived";
/// Confirmed by hashing a candidate file.
pub const HASH_GUESS: Source = "hash guess";

/// A pointer as the adversary saw it: enough to confirm a guessed record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SeenPointer {
    /// The record id.
    pub record_id: B256,
    /// Whose record it is.
    pub patient: Address,
    /// Who holds it.
    pub holder: Address,
    /// Its category, when it was in the clear.
    pub category: Option<u8>,
    /// Its SHA-256, when it was in the clear.
    pub content_hash: Option<B256>,
    /// Its commitment (issue 16: salted, so a guess cannot be checked without the salt).
    pub commitment: Option<B256>,
}

/// Everything recovered: facts per patient, with the sources that gave each.
#[derive(Debug, Default)]
pub struct Findings {
    facts: BTreeMap<(Address, Kind, String), BTreeSet<Source>>,
    /// Pointers seen (for hash guessing).
    pub pointers: BTreeSet<SeenPointer>,
    /// Providers (credentialed accounts of the provider role, and every grantee seen).
    pub providers: BTreeSet<Address>,
    /// Who paid for whom: an account that sent a transaction acting for another (a relayed
    /// grant or opt-in) or sent it ether, and those accounts.
    pub paid_by: BTreeMap<Address, BTreeSet<Address>>,
    /// The deployment's governance account (a relayer for everyone, which links nobody).
    pub governance: Option<Address>,
    /// Studies seen, with their categories.
    pub studies: BTreeMap<u64, u64>,
    /// Study pseudonyms seen (issue 16: opt-ins name them, not patients), with their studies
    /// and where they were seen; [`Findings::derive_studies`] tries to link them to patients.
    pub pseudonyms: BTreeMap<Address, (BTreeSet<u64>, BTreeSet<Source>)>,
    /// Study pseudonyms linked to each other (one person's, or one household's): those whose
    /// messages one payer of few accounts relayed, with that payer.
    pub pseudonym_links: Vec<(Address, BTreeSet<Address>)>,
    /// What was tried, in order: (attack, what it read, what it found).
    pub tried: Vec<(String, String, String)>,
}

impl Findings {
    /// Records `detail` of `kind` about `patient`, read from `source`.
    pub fn add(&mut self, patient: Address, kind: Kind, detail: String, source: Source) {
        self.facts
            .entry((patient, kind, detail))
            .or_default()
            .insert(source);
    }

    /// Notes that `payer` paid the gas of (or sent ether to) `account`.
    pub fn paid(&mut self, payer: Address, account: Address) {
        if payer != account {
            self.paid_by.entry(payer).or_default().insert(account);
        }
    }

    /// Notes that study pseudonym `pseudonym` took part in study `study`, seen in `source`.
    pub fn pseudonym(&mut self, pseudonym: Address, study: u64, source: Source) {
        let e = self.pseudonyms.entry(pseudonym).or_default();
        e.0.insert(study);
        e.1.insert(source);
    }

    /// Studies of patients, through their pseudonyms: a pseudonym that is a known patient's own
    /// address (an opt-in from the patient's account, as before issue 16), or whose opt-in was
    /// paid by an account that paid for few others, one of them a known patient (a household's
    /// or the patient's own payer; a relayer for many links nobody).
    pub fn derive_studies(&mut self, known: &BTreeSet<Address>) {
        let mut n = 0;
        let pseudonyms = std::mem::take(&mut self.pseudonyms);
        for (pseudonym, (studies, sources)) in &pseudonyms {
            let mut whose: BTreeSet<Address> = BTreeSet::new();
            if known.contains(pseudonym) {
                whose.insert(*pseudonym);
            }
            for (payer, paid) in &self.paid_by {
                if !paid.contains(pseudonym)
                    || self.providers.contains(payer)
                    || Some(*payer) == self.governance
                    || paid.len() > MAX_HOUSEHOLD
                {
                    continue;
                }
                whose.extend(paid.iter().filter(|a| known.contains(*a)));
                if known.contains(payer) {
                    whose.insert(*payer);
                }
            }
            for patient in whose {
                for s in studies {
                    for src in sources {
                        self.add(patient, Kind::Study, study_detail(*s), src);
                    }
                    self.add(patient, Kind::Study, study_detail(*s), DERIVED);
                    n += 1;
                }
            }
        }
        self.tried(
            "studies: pseudonyms linked to patients",
            format!(
                "{} study pseudonyms (OptedIn and Withdrew logs, optInBySig/withdrawBySig/cancelBySig inputs, the indexer's pseudonym tables), each checked against the {} patient addresses seen and against who paid for its transactions (relayers for over {MAX_HOUSEHOLD} accounts, providers and governance link nobody)",
                pseudonyms.len(),
                known.len()
            ),
            format!("{n} studies of patients"),
        );
        // Pseudonym to pseudonym: a payer of few accounts (a patient's personal second
        // account, a household's) that relayed two pseudonyms or more links them to one
        // another, whoever they are.
        self.pseudonym_links = self
            .paid_by
            .iter()
            .filter(|(payer, paid)| {
                !self.providers.contains(*payer)
                    && Some(**payer) != self.governance
                    && paid.len() <= MAX_HOUSEHOLD
            })
            .map(|(payer, paid)| {
                let linked: BTreeSet<Address> = paid
                    .iter()
                    .filter(|a| pseudonyms.contains_key(*a))
                    .copied()
                    .collect();
                (*payer, linked)
            })
            .filter(|(_, linked)| linked.len() >= 2)
            .collect();
        let linked: usize = self.pseudonym_links.iter().map(|(_, l)| l.len()).sum();
        self.tried(
            "studies: pseudonyms linked to each other",
            format!(
                "who paid for the transactions of the {} study pseudonyms (payers of over {MAX_HOUSEHOLD} accounts, providers and governance link nobody)",
                pseudonyms.len()
            ),
            format!(
                "{linked} pseudonyms in {} group(s) of one payer",
                self.pseudonym_links.len()
            ),
        );
        self.pseudonyms = pseudonyms;
    }

    /// Notes an attack: what it read and what came of it.
    pub fn tried(&mut self, attack: &str, read: String, found: String) {
        self.tried.push((attack.to_string(), read, found));
    }

    /// Facts of `kind`, counted.
    fn count(&self, kind: Kind) -> usize {
        self.facts.keys().filter(|(_, k, _)| *k == kind).count()
    }

    /// Patients any fact is about.
    fn patients(&self) -> BTreeSet<Address> {
        self.facts.keys().map(|(p, _, _)| *p).collect()
    }

    /// Patients about whom a fact of `kind` is known.
    fn patients_with(&self, kind: Kind) -> BTreeSet<Address> {
        self.facts
            .keys()
            .filter(|(_, k, _)| *k == kind)
            .map(|(p, _, _)| *p)
            .collect()
    }

    /// Every fact, for the JSON report.
    fn facts_json(&self) -> Value {
        let mut by: BTreeMap<Address, Vec<Value>> = BTreeMap::new();
        for ((p, k, d), s) in &self.facts {
            by.entry(*p)
                .or_default()
                .push(json!({"kind": k.name(), "detail": d, "sources": s}));
        }
        json!(
            by.into_iter()
                .map(|(p, f)| json!({"patient": p, "facts": f}))
                .collect::<Vec<_>>()
        )
    }

    /// Links: a patient related to two holders or more (records held, grants, break-glass).
    fn derive_links(&mut self) {
        let mut at: BTreeMap<Address, BTreeSet<Address>> = BTreeMap::new();
        for p in &self.pointers {
            at.entry(p.patient).or_default().insert(p.holder);
        }
        for (patient, kind, detail) in self.facts.keys() {
            if matches!(kind, Kind::Grantee | Kind::Emergency | Kind::Category)
                && let Some(a) = first_address(detail)
            {
                at.entry(*patient).or_default().insert(a);
            }
        }
        let mut n = 0;
        for (patient, holders) in &at {
            if holders.len() >= 2 {
                let list: Vec<String> = holders.iter().map(|h| h.to_string()).collect();
                self.add(
                    *patient,
                    Kind::Link,
                    format!("known at {}", list.join(" and ")),
                    DERIVED,
                );
                n += 1;
            }
        }
        self.tried(
            "cross-holder links: one account",
            "holders, grantees and break-glass providers of each patient, from every fact above"
                .into(),
            format!("{n} patients known at two holders or more"),
        );
        // Accounts whose gas one payer funds are one person (or one household): unless the
        // payer is a public relayer, which pays for many, or a provider or governance.
        let mut links = 0;
        let payers: Vec<(Address, BTreeSet<Address>)> = self
            .paid_by
            .iter()
            .filter(|(payer, _)| {
                !self.providers.contains(*payer) && Some(**payer) != self.governance
            })
            .map(|(payer, paid)| {
                let paid: BTreeSet<Address> = paid
                    .iter()
                    .filter(|a| at.contains_key(*a))
                    .copied()
                    .collect();
                (*payer, paid)
            })
            .filter(|(_, paid)| (2..=MAX_HOUSEHOLD).contains(&paid.len()))
            .collect();
        for (payer, paid) in &payers {
            let holders: BTreeSet<Address> =
                paid.iter().flat_map(|a| at[a].iter().copied()).collect();
            if holders.len() < 2 {
                continue;
            }
            for a in paid {
                let others: Vec<String> = paid
                    .iter()
                    .filter(|o| *o != a)
                    .map(|o| o.to_string())
                    .collect();
                let list: Vec<String> = holders.iter().map(|h| h.to_string()).collect();
                self.add(
                    *a,
                    Kind::Link,
                    format!(
                        "same payer {payer} as {}: known at {}",
                        others.join(", "),
                        list.join(" and ")
                    ),
                    DERIVED,
                );
                links += 1;
            }
        }
        self.tried(
            "cross-holder links: who pays the gas",
            format!(
                "{} accounts that relayed a patient's transaction or sent one ether, less providers, governance and relayers for over {MAX_HOUSEHOLD}",
                self.paid_by.len()
            ),
            format!("{links} patients linked to another at a different holder"),
        );
    }
}

/// Most patient accounts one payer funds and is still taken for one person or household;
/// a payer for more is a public relayer, which links nobody.
const MAX_HOUSEHOLD: usize = 5;

/// The first `0x` + 40 hex digits in `s`.
fn first_address(s: &str) -> Option<Address> {
    s.match_indices("0x")
        .find_map(|(i, _)| s.get(i..i + 42).and_then(|a| a.parse().ok()))
}

/// A grant's facts, worded once so that every source gives the same string.
pub fn grant_detail(
    grantee: Address,
    categories: u64,
    purpose: u8,
    from: u64,
    until: u64,
) -> String {
    format!(
        "{grantee}: [{}] for {}, from {from} until {until}",
        medrec_bindings::category_names(categories).join(", "),
        medrec_bindings::purpose_name(purpose)
    )
}

/// A guardian's mandate, worded once.
pub fn guardian_detail(guardian: Address, scope: u64, from: u64, until: u64) -> String {
    format!(
        "{guardian} over [{}], from {from} until {until}",
        medrec_bindings::category_names(scope).join(", ")
    )
}

/// A record category at a holder, worded once.
pub fn category_detail(holder: Address, category: u8) -> String {
    format!("{} at {holder}", medrec_bindings::category_name(category))
}

/// A break-glass opening, worded once.
pub fn emergency_detail(provider: Address, block: u64) -> String {
    format!("break-glass by {provider} in block {block}")
}

/// A break-glass rule, worded once.
pub fn rule_detail(excluded: u64) -> String {
    format!(
        "break-glass rule excludes [{}]",
        medrec_bindings::category_names(excluded).join(", ")
    )
}

/// A study, worded once.
pub fn study_detail(study: u64) -> String {
    format!("study {study}")
}

/// Runs the adversary: reads everything, prints the report; with `--expect-nothing`, fails
/// when anything was recovered.
pub async fn run(args: &Args, a: &AdversaryArgs) -> Result<()> {
    let mut f = Findings::default();
    chain::read(args, &mut f).await?;
    if let Some(url) = &a.database_url {
        indexer_db::read(url, &mut f).await?;
    } else {
        f.tried(
            "indexer database",
            "not given (--database-url)".into(),
            "nothing tried".into(),
        );
    }
    if a.candidates.is_empty() {
        f.tried(
            "content by hash guessing",
            "no candidates given (--candidates)".into(),
            "nothing tried".into(),
        );
    } else {
        guess_contents(&a.candidates, &mut f)?;
    }
    let known: BTreeSet<Address> = f
        .patients()
        .into_iter()
        .chain(f.pointers.iter().map(|p| p.patient))
        .collect();
    f.derive_studies(&known);
    f.derive_links();
    if a.json {
        print_json(&f);
    } else {
        print_text(&f, a.show_patients);
    }
    let n = f.facts.len() + f.pseudonym_links.len();
    if a.expect_nothing && n > 0 {
        return Err(Fail(
            1,
            format!(
                "adversary: recovered {} facts about {} patients and {} links of study pseudonyms (expected nothing)",
                f.facts.len(),
                f.patients().len(),
                f.pseudonym_links.len()
            ),
        ));
    }
    Ok(())
}

/// Files under `dir`, recursively, in a fixed order.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let entries =
            std::fs::read_dir(&d).map_err(|e| io(format!("cannot read {}: {e}", d.display())))?;
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if p.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Most commitment guesses tried (candidates x pointers x categories): beyond it the guess is
/// skipped and said so (the content-hash lookup still runs).
const MAX_ID_GUESSES: usize = 5_000_000;

/// Hashes each candidate as it is and without trailing whitespace (an editor's newline), and
/// looks the hashes up among the content hashes seen; then, for every pointer seen with a
/// commitment, recomputes the commitment of each candidate under every category with no salt
/// (the commitment is salted: this must find nothing) and the record id such a commitment
/// gives, which would confirm a record whose content hash is not in the clear.
fn guess_contents(dirs: &[PathBuf], f: &mut Findings) -> Result<()> {
    use medrec_protocol::records::{commitment, record_id};
    use sha2::{Digest, Sha256};
    let mut files = vec![];
    for dir in dirs {
        if !dir.is_dir() {
            return Err(input(format!(
                "--candidates: {} is not a folder",
                dir.display()
            )));
        }
        files.extend(files_under(dir)?.into_iter().map(|p| (dir, p)));
    }
    let mut hashes: BTreeMap<B256, String> = BTreeMap::new();
    for (dir, p) in &files {
        let bytes =
            std::fs::read(p).map_err(|e| io(format!("cannot read {}: {e}", p.display())))?;
        let name = p.strip_prefix(dir).unwrap_or(p).display().to_string();
        let trimmed = bytes.trim_ascii_end();
        for b in [&bytes[..], trimmed] {
            hashes
                .entry(B256::from_slice(&Sha256::digest(b)))
                .or_insert_with(|| name.clone());
        }
    }
    let pointers: Vec<SeenPointer> = f.pointers.iter().cloned().collect();
    let mut by_content = 0;
    for p in &pointers {
        if let Some(name) = p.content_hash.and_then(|h| hashes.get(&h)) {
            f.add(
                p.patient,
                Kind::Content,
                content_detail(p, None, name),
                HASH_GUESS,
            );
            by_content += 1;
        }
    }
    f.tried(
        "content by hash guessing: SHA-256",
        format!(
            "{} candidate files under {} ({} hashes: as is, and without trailing whitespace), against {} content hashes seen",
            files.len(),
            dirs.iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            hashes.len(),
            pointers.iter().filter(|p| p.content_hash.is_some()).count()
        ),
        format!("{by_content} records' contents confirmed"),
    );
    // commitment(patient, holder, category, SHA-256, no salt) for every pointer with a
    // commitment, each candidate and each category; its record id likewise.
    let committed: Vec<&SeenPointer> = pointers.iter().filter(|p| p.commitment.is_some()).collect();
    let guesses = hashes.len() * committed.len() * 64;
    if guesses > MAX_ID_GUESSES {
        f.tried(
            "content by hash guessing: commitments",
            format!("{guesses} guesses, over the {MAX_ID_GUESSES} this tool tries"),
            "skipped".into(),
        );
        return Ok(());
    }
    let mut by_commitment = 0;
    for (h, name) in &hashes {
        for p in &committed {
            for category in 0..64u8 {
                let c = commitment(p.patient, p.holder, category, *h, B256::ZERO);
                if Some(c) == p.commitment || record_id(p.holder, p.patient, c) == p.record_id {
                    f.add(
                        p.patient,
                        Kind::Content,
                        content_detail(p, Some(category), name),
                        HASH_GUESS,
                    );
                    by_commitment += 1;
                }
            }
        }
    }
    f.tried(
        "content by hash guessing: commitments",
        format!(
            "keccak256(patient, holder, category, SHA-256, salt 0) of each candidate under the 64 categories, and the record id it gives, for {} pointers with a commitment ({guesses} guesses)",
            committed.len()
        ),
        format!("{by_commitment} records' contents confirmed"),
    );
    Ok(())
}

fn content_detail(p: &SeenPointer, guessed: Option<u8>, name: &str) -> String {
    let category = match guessed.or(p.category) {
        Some(c) => medrec_bindings::category_name(c),
        None => "a record".to_string(),
    };
    format!(
        "record {} ({category} at {}) is {name}",
        p.record_id, p.holder
    )
}

fn print_json(f: &Findings) {
    let summary: Vec<Value> = Kind::ALL
        .iter()
        .map(|k| json!({"kind": k.name(), "facts": f.count(*k), "patients": f.patients_with(*k).len()}))
        .collect();
    let tried: Vec<Value> = f
        .tried
        .iter()
        .map(|(a, r, o)| json!({"attack": a, "read": r, "found": o}))
        .collect();
    let doc = json!({"version": 1, "recovered": f.facts.len(), "patients": f.patients().len(),
        "tried": tried, "summary": summary, "facts": f.facts_json(),
        "pseudonymLinks": f.pseudonym_links.iter()
            .map(|(payer, linked)| json!({"payer": payer, "pseudonyms": linked}))
            .collect::<Vec<_>>()});
    println!("{doc}");
}

fn print_text(f: &Findings, show: usize) {
    println!("What the adversary tried:");
    for (attack, read, found) in &f.tried {
        println!("  - {attack}: read {read}; {found}");
    }
    for (payer, linked) in &f.pseudonym_links {
        let list: Vec<String> = linked.iter().map(|a| a.to_string()).collect();
        println!(
            "  study pseudonyms of one person (one payer, {payer}): {}",
            list.join(", ")
        );
    }
    let patients = f.patients();
    // The most exposed first: most kinds of fact, then most facts.
    let mut ranked: Vec<(usize, usize, Address)> = patients
        .iter()
        .map(|p| {
            let mine = f.facts.keys().filter(|(q, _, _)| q == p);
            let kinds: BTreeSet<Kind> = mine.clone().map(|(_, k, _)| *k).collect();
            (kinds.len(), mine.count(), *p)
        })
        .collect();
    ranked.sort_by(|a, b| (b.0, b.1).cmp(&(a.0, a.1)).then(a.2.cmp(&b.2)));
    println!(
        "\nWhat it recovered, per patient ({} patients{}):",
        patients.len(),
        if patients.len() > show {
            format!(", the {show} most exposed shown")
        } else {
            String::new()
        }
    );
    for (_, _, p) in ranked.iter().take(show) {
        println!("  {p}");
        for ((_, k, d), s) in f.facts.iter().filter(|((q, _, _), _)| q == p) {
            let sources: Vec<&str> = s.iter().copied().collect();
            println!("    {:<18} {d}   ({})", k.name(), sources.join(", "));
        }
    }
    println!("\nSummary:");
    println!(
        "  {:<20} {:>8} {:>9}  sources",
        "recovered", "facts", "patients"
    );
    for k in Kind::ALL {
        let sources: BTreeSet<Source> = f
            .facts
            .iter()
            .filter(|((_, kk, _), _)| *kk == k)
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        println!(
            "  {:<20} {:>8} {:>9}  {}",
            k.name(),
            f.count(k),
            f.patients_with(k).len(),
            sources.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    println!(
        "  {:<20} {:>8} {:>9}",
        "in all",
        f.facts.len(),
        patients.len()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The study-linking attack itself: a pseudonym that is a patient's own address, or whose
    /// opt-in a household's payer relayed, gives that patient's study away; one relayed by a
    /// payer for many accounts, by governance or by a provider gives nothing.
    #[test]
    fn study_pseudonyms_are_linked_by_address_or_a_households_payer_only() {
        let (p, q, r) = (
            Address::repeat_byte(1),
            Address::repeat_byte(2),
            Address::repeat_byte(3),
        );
        let (own, household, relayed, governed) = (
            p,
            Address::repeat_byte(0x11),
            Address::repeat_byte(0x12),
            Address::repeat_byte(0x13),
        );
        let (payer, relayer, gov) = (
            Address::repeat_byte(0xa1),
            Address::repeat_byte(0xa2),
            Address::repeat_byte(0xa3),
        );
        let mut f = Findings {
            governance: Some(gov),
            ..Findings::default()
        };
        f.pseudonym(own, 1, LOGS);
        f.pseudonym(household, 2, CALLDATA);
        f.pseudonym(relayed, 3, LOGS);
        f.pseudonym(governed, 4, LOGS);
        // The household's payer sent ether to Q and relayed one pseudonym's opt-in.
        f.paid(payer, q);
        f.paid(payer, household);
        // A relayer for many: R among eight others.
        f.paid(relayer, relayed);
        f.paid(relayer, r);
        for i in 0..8u8 {
            f.paid(relayer, Address::repeat_byte(0x40 + i));
        }
        f.paid(gov, governed);
        f.paid(gov, r);
        let known: BTreeSet<Address> = [p, q, r].into_iter().collect();
        f.derive_studies(&known);
        let studies = |a: Address| -> Vec<String> {
            f.facts
                .keys()
                .filter(|(x, k, _)| *x == a && *k == Kind::Study)
                .map(|(_, _, d)| d.clone())
                .collect()
        };
        assert_eq!(studies(p), vec![study_detail(1)]);
        assert_eq!(studies(q), vec![study_detail(2)]);
        assert!(studies(r).is_empty(), "{:?}", studies(r));
        let (_, _, found) = &f.tried[f.tried.len() - 2];
        assert_eq!(found, "2 studies of patients");
        assert!(f.pseudonym_links.is_empty(), "{:?}", f.pseudonym_links);
    }

    /// Attack review finding 7: a patient's personal second account that relays their opt-ins
    /// links all of their pseudonyms to one another, even though none is tied to a patient; a
    /// relayer for many, governance or a provider links none.
    #[test]
    fn study_pseudonyms_relayed_by_a_payer_of_few_are_linked_to_each_other() {
        let (s1, s2, s3, s4) = (
            Address::repeat_byte(0x21),
            Address::repeat_byte(0x22),
            Address::repeat_byte(0x23),
            Address::repeat_byte(0x24),
        );
        let (second, relayer, hospital) = (
            Address::repeat_byte(0xb1),
            Address::repeat_byte(0xb2),
            Address::repeat_byte(0xb3),
        );
        let mut f = Findings::default();
        f.providers.insert(hospital);
        for (p, s) in [(s1, 1), (s2, 2), (s3, 3), (s4, 4)] {
            f.pseudonym(p, s, CALLDATA);
        }
        f.paid(second, s1);
        f.paid(second, s2);
        f.paid(relayer, s3);
        for i in 0..8u8 {
            f.paid(relayer, Address::repeat_byte(0x40 + i));
        }
        f.paid(relayer, s4);
        f.paid(hospital, s3);
        f.paid(hospital, s4);
        f.derive_studies(&BTreeSet::new());
        assert_eq!(
            f.pseudonym_links,
            vec![(second, [s1, s2].into_iter().collect())]
        );
        let (_, _, found) = f.tried.last().unwrap();
        assert_eq!(found, "2 pseudonyms in 1 group(s) of one payer");
    }
}
