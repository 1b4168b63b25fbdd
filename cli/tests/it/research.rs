//! `medrec study query` against holders played by the test (issue 15, the researcher's side):
//! every answer is noised at the holder's share of the query's epsilon and covers every cell
//! of age band by sex; the CLI counts an answer only when it says so of itself, and the
//! receipt charges epsilon in millionths. The holders here are credentialed providers with a
//! registered endpoint whose gatekeeper is a small HTTP server that signs what the test tells
//! it to, honest or not; the real gatekeeper's answers are tested in the gatekeeper's crate.

use crate::harness::Env;
use alloy::primitives::{Address, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use medrec_protocol::health::{HEALTH_PATH, Health, OK};
use medrec_protocol::research::{
    AGE_BANDS, Answer, Cell, QUERY_PATH, Query, QueryResult, SEXES, SignedAnswer, SignedQuery,
    Stats, canonical_json,
};
use medrec_protocol::study_tags::{
    self, OptInContext, SERVICE_KEY_PATH, ServiceKey, ServiceKeyAnswer,
};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// How a played holder answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// As the protocol says: noise at its share of epsilon, every cell.
    Honest,
    /// Noise for the query's whole epsilon: more privacy spent than the budget paid for.
    WholeEpsilon,
    /// Every cell but the last ("absent" again).
    MissingCell,
    /// The cohort of another block than the pinned one.
    OtherPin,
}

/// The study's minimum cell in these tests.
const MIN_CELL: i64 = 5;

/// A played holder: its address, the URL it listens at, how it answers, how many research
/// queries it was sent.
struct Holder {
    key: PrivateKeySigner,
    address: Address,
    url: String,
    mode: Arc<Mutex<Mode>>,
    queries: Arc<AtomicUsize>,
}

impl Holder {
    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

/// The answer `key`'s holder gives to `q` in `mode`: the first cell at `shown`, the rest held
/// back; an observation's count `shown` and mean 7.
fn answer(key: &PrivateKeySigner, sq: &SignedQuery, q: &Query, mode: Mode, shown: i64) -> Answer {
    let (num, den) = q.holder_epsilon();
    let result = match q {
        Query::ConditionCount { .. } => {
            let mut cells: Vec<Cell> = AGE_BANDS
                .iter()
                .flat_map(|b| SEXES.iter().map(move |s| (b, s)))
                .enumerate()
                .map(|(i, (b, s))| {
                    let n = if i == 0 { shown } else { 0 };
                    Cell::new(b.to_string(), s.to_string(), n, MIN_CELL)
                })
                .collect();
            if mode == Mode::MissingCell {
                cells.pop();
            }
            QueryResult::Cells { cells }
        }
        Query::ObservationStats { .. } => QueryResult::Stats(Stats {
            count: shown,
            mean: Some(7.0),
        }),
    };
    Answer {
        holder: key.address(),
        study_id: sq.request.studyId,
        query_hash: keccak256(sq.query.as_bytes()),
        pinned_block: q.pinned_block() - u64::from(mode == Mode::OtherPin),
        min_cell_size: MIN_CELL,
        epsilon: if mode == Mode::WholeEpsilon {
            q.epsilon()
        } else {
            num as f64 / den as f64
        },
        result,
    }
}

/// Starts a gatekeeper for `key`'s holder that shows `shown` in its first cell (or as an
/// observation's count).
fn serve(key: PrivateKeySigner, shown: i64) -> Holder {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let mode = Arc::new(Mutex::new(Mode::Honest));
    let queries = Arc::new(AtomicUsize::new(0));
    let (m, n) = (mode.clone(), queries.clone());
    let address = key.address();
    let holder_key = key.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn);
            let mut head = String::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let reply = if head.starts_with(&format!("GET {HEALTH_PATH} ")) {
                serde_json::to_string(&Health {
                    status: OK.into(),
                    holder: address,
                    head_block: 0,
                    head_age_secs: 0,
                })
                .unwrap()
            } else if head.starts_with(&format!("GET {SERVICE_KEY_PATH} ")) {
                // The holder's own key as its service key (the chain may say otherwise).
                let k = ServiceKey::from_bytes(&key.to_bytes()).unwrap();
                serde_json::to_string(&ServiceKeyAnswer {
                    holder: address,
                    public_key: k.public_key().into(),
                    address,
                })
                .unwrap()
            } else if head.starts_with(&format!("POST {QUERY_PATH} ")) {
                n.fetch_add(1, Ordering::SeqCst);
                let sq: SignedQuery = serde_json::from_slice(&body).unwrap();
                let q = Query::parse(&sq.query).unwrap();
                let a = answer(&key, &sq, &q, *m.lock().unwrap(), shown);
                let text = canonical_json(&a).unwrap();
                let sig = key.sign_hash_sync(&keccak256(text.as_bytes())).unwrap();
                serde_json::to_string(&SignedAnswer {
                    answer: text,
                    signature: format!("0x{}", alloy::hex::encode(sig.as_bytes())),
                })
                .unwrap()
            } else {
                "{}".into()
            };
            let _ = reader.get_mut().write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                )
                .as_bytes(),
            );
        }
    });
    Holder {
        key: holder_key,
        address,
        url,
        mode,
        queries,
    }
}

/// A world with a credentialed researcher, an approved study 1 (min cell 5, the default
/// budget of 10 epsilon) and two credentialed holders whose registered gatekeepers are played
/// by the test, showing `shown[i]` each.
fn world(shown: [i64; 2]) -> (Env, Vec<Holder>) {
    let env = Env::deployed();
    let r = env.new_account("researcher", true);
    env.credential(&r, "researcher", "irb");
    let mut holders = vec![];
    for (i, n) in shown.into_iter().enumerate() {
        let key = PrivateKeySigner::random();
        let name = format!("holder-{i}");
        medrec_test_support::import_key(env.cmd(&[]), env.dir.path(), &name, &key);
        let a = key.address().to_string();
        env.rpc(
            "anvil_setBalance",
            &format!(r#"["{a}","0x56bc75e2d63100000"]"#),
        );
        env.credential(&a, "provider", &name);
        let h = serve(key, n);
        env.ok(&[
            "-a",
            &name,
            "holder",
            "register",
            "--endpoint",
            &h.url,
            "--service-key",
            &Address::repeat_byte(0x5e).to_string(),
        ]);
        holders.push(h);
    }
    env.write("protocol.txt", "diabetes by age band and sex");
    let reg = env.json(&[
        "-a",
        "researcher",
        "study",
        "register",
        "--protocol",
        &env.path_str("protocol.txt"),
        "-c",
        "conditions,demographics,labs",
        "--min-cell",
        "5",
    ]);
    assert_eq!(reg["studyId"], 1, "{reg}");
    env.json(&["-a", "gov", "study", "approve", "1"]);
    (env, holders)
}

/// The study's budget spent, from `study show`.
fn spent(env: &Env) -> U256 {
    let s = env.json(&["study", "show", "1"]);
    match &s["spent"] {
        Value::String(v) => v.parse().unwrap(),
        v => U256::from(v.as_u64().unwrap()),
    }
}

/// Noised answers from two holders: each checked (its share of epsilon, every cell), added up
/// cell by cell, held-back cells shown as such; the query names its holders in ascending
/// order whatever order they were given in; the receipt charges epsilon in millionths.
#[test]
fn noised_answers_are_checked_combined_and_charged_their_epsilon() {
    let (env, holders) = world([12, 9]);
    let mut sorted: Vec<Address> = holders.iter().map(|h| h.address).collect();
    sorted.sort();
    // Given in descending order.
    let given = format!("{},{}", sorted[1], sorted[0]);
    let q = env.json(&[
        "-a",
        "researcher",
        "study",
        "query",
        "1",
        "--condition",
        "44054006",
        "--epsilon",
        "0.5",
        "--holders",
        &given,
    ]);
    let names: Vec<Address> = q["query"]["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(names, sorted, "{q}");
    assert_eq!(q["epsilon"], 0.5);
    assert_eq!(q["holderEpsilon"], 0.25);
    assert_eq!(q["minCellSize"], 5);
    assert_eq!(q["cost"], 500_000);
    let cells = q["combined"]["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 20, "{q}");
    assert_eq!(cells[0]["count"], 21);
    assert_eq!(cells[0]["suppressedAtSomeHolder"], false);
    assert!(
        cells[1..]
            .iter()
            .all(|c| c["count"] == 0 && c["suppressedAtSomeHolder"] == true),
        "{q}"
    );
    assert_eq!(spent(&env), U256::from(500_000));

    // For people: every cell, the held-back ones said so, the noise; an observation's mean
    // with its clamping bounds.
    let out = env.ok(&[
        "-a",
        "researcher",
        "study",
        "query",
        "1",
        "--observation",
        "4548-4",
        "--lower",
        "3",
        "--upper",
        "15",
        "--epsilon",
        "1",
        "--holders",
        &given,
    ]);
    assert!(out.contains("noised, epsilon 1 over 2 holder(s)"), "{out}");
    assert!(
        out.contains("count 21  mean 7.00 (each value clamped to [3, 15])"),
        "{out}"
    );
    let out = env.ok(&[
        "-a",
        "researcher",
        "study",
        "query",
        "1",
        "--condition",
        "44054006",
        "--epsilon",
        "0.25",
        "--holders",
        &given,
    ]);
    assert_eq!(
        out.matches("held back (noised count under 5)").count(),
        19,
        "{out}"
    );
    assert!(out.contains("0-17     female        21"), "{out}");
    assert_eq!(spent(&env), U256::from(1_750_000));
}

/// A holder whose answer is noised for the query's whole epsilon instead of its share (so that
/// the patients it holds lose more privacy than the budget paid for), leaves out a cell (so
/// that "absent" and "held back" differ again) or counts another block is not counted: the
/// query fails in one line naming it (exit 9). Bad flags fail before any holder is asked.
#[test]
fn an_answer_at_more_than_its_share_of_epsilon_or_missing_a_cell_is_refused() {
    let (env, holders) = world([12, 9]);
    let list = format!("{},{}", holders[0].address, holders[1].address);
    let ask = |eps: &str| {
        env.fail(
            9,
            &[
                "-q",
                "-a",
                "researcher",
                "study",
                "query",
                "1",
                "--condition",
                "44054006",
                "--epsilon",
                eps,
                "--holders",
                &list,
            ],
        )
    };
    let cheat = &holders[1];
    let named = cheat.address.to_string();
    for (mode, eps, why) in [
        (
            Mode::WholeEpsilon,
            "1",
            "noise is drawn for epsilon 1, not its share 0.5",
        ),
        (Mode::MissingCell, "0.5", "19 cells, not the 20"),
        (Mode::OtherPin, "0.25", "not the pinned block"),
    ] {
        cheat.set(mode);
        let e = ask(eps);
        assert!(e.contains(&named), "{mode:?}: {e}");
        assert!(e.contains(why), "{mode:?}: {e}");
        // The honest holder's answer has its receipt (it answers nothing else of the study
        // until then); the refused one is not in it.
        assert!(e.contains("without the refused answer"), "{mode:?}: {e}");
    }

    // Without --epsilon, or an observation without bounds: refused before anything is sent.
    let before = holders[0].queries() + holders[1].queries();
    for (args, why) in [
        (&["--condition", "44054006"][..], "give --epsilon"),
        (
            &["--observation", "4548-4", "--epsilon", "1", "--lower", "3"][..],
            "--observation needs --lower and --upper",
        ),
        (
            &[
                "--observation",
                "4548-4",
                "--epsilon",
                "1",
                "--lower",
                "3",
                "--upper",
                "3",
            ][..],
            "--lower must be under --upper",
        ),
        (
            &["--condition", "44054006", "--epsilon", "11"][..],
            "(0, 10]",
        ),
    ] {
        let mut a = vec!["-a", "researcher", "study", "query", "1"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--holders", &list]);
        let e = env.fail(2, &a);
        assert!(e.contains(why), "{args:?}: {e}");
    }
    assert_eq!(holders[0].queries() + holders[1].queries(), before);
}

/// Issue 16: `study opt-in` encrypts a holder's slot only to the service key its gatekeeper
/// serves when it is the one the holder registered on chain (holder 0 registered another: a
/// gatekeeper serving a key of its choosing is refused, before anything is signed or sent);
/// holder 1's slot, once its registration names the served key, opens with that key to the
/// patient's signature over the study and the patient's pseudonym, which signed the opt-in;
/// the relayer sends it and `study mine` finds it.
#[test]
fn an_opt_in_slot_is_encrypted_only_to_the_registered_service_key() {
    let (env, holders) = world([12, 9]);
    let h0 = holders[0].address.to_string();
    let e = env.fail(
        10,
        &[
            "-a",
            "patient",
            "study",
            "opt-in",
            "1",
            "--holders",
            &h0,
            "--relayer",
            "gov",
        ],
    );
    assert!(e.contains("not the one registered on chain"), "{e}");
    let h1 = holders[1].address.to_string();
    env.ok(&[
        "-a",
        "holder-1",
        "holder",
        "register",
        "--endpoint",
        &holders[1].url,
        "--service-key",
        &h1,
    ]);
    env.ok(&[
        "-a",
        "patient",
        "study",
        "opt-in",
        "1",
        "--holders",
        &h1,
        "--sign-only",
        "--out",
        "opt-in.json",
    ]);
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(env.path("opt-in.json")).unwrap()).unwrap();
    let pseudonym: Address = file["message"]["pseudonym"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let patient: Address = env.addr("patient").parse().unwrap();
    assert_ne!(pseudonym, patient);
    let tags = alloy::hex::decode(file["message"]["tags"].as_str().unwrap()).unwrap();
    assert_eq!(tags.len(), study_tags::TAGS_LEN);
    let ctx = OptInContext {
        chain_id: file["chainId"].as_u64().unwrap(),
        registry: file["contract"].as_str().unwrap().parse().unwrap(),
        study_id: U256::from(1),
        pseudonym,
    };
    let opened = |k: &PrivateKeySigner| {
        study_tags::open(
            &ServiceKey::from_bytes(&k.to_bytes()).unwrap(),
            k.address(),
            &ctx,
            &tags,
        )
    };
    assert_eq!(opened(&holders[1].key), Some(patient));
    assert_eq!(opened(&holders[0].key), None);
    let sent = env.json(&["-a", "gov", "relay", "opt-in.json"]);
    assert_eq!(sent["pseudonym"], pseudonym.to_string(), "{sent}");
    let mine = env.json(&["-a", "patient", "study", "mine"]);
    assert_eq!(mine["studies"], serde_json::json!([1]), "{mine}");
}
