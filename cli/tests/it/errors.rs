//! Bad input, unreachable nodes, wrong chains, missing deployments, funds, and settings.

use crate::harness::{Env, free_port};

#[test]
fn bad_input_is_one_line_exit_2() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "-a", "patient", "grant", "0x1234", "-c", "labs", "--for", "1d",
            ],
            "bad grantee address",
        ),
        (
            &[
                "-a",
                "patient",
                "grant",
                "0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
                "-c",
                "labs",
                "--for",
                "1d",
            ],
            "wrong checksum",
        ),
        (
            &["-a", "patient", "grant", &p, "-c", "x-rays", "--for", "1d"],
            "unknown category \"x-rays\"",
        ),
        (
            &[
                "-a",
                "patient",
                "grant",
                &p,
                "-c",
                "labs",
                "--for",
                "ninety days",
            ],
            "bad duration",
        ),
        (
            &[
                "-a",
                "patient",
                "grant",
                &p,
                "-c",
                "labs",
                "--until",
                "2026-02-30",
            ],
            "bad date",
        ),
        (
            &["check", "--grantee", &p, "-c", "labs", "--patient", "nope"],
            "bad patient address",
        ),
        (
            &[
                "break-glass",
                "open",
                &p,
                "--reason",
                " ",
                "-a",
                "hospital-a",
            ],
            "--reason is empty",
        ),
        (
            &["anchor-batch", "missing.json", "-a", "hospital-a"],
            "cannot read",
        ),
    ];
    for (args, needle) in cases {
        let code = if needle == &"cannot read" { 8 } else { 2 };
        let e = env.fail(code, args);
        assert!(e.contains(needle), "{args:?}: {e}");
    }
    let j = env.fail_json(
        2,
        &["check", "--grantee", &p, "-c", "bogus", "--patient", &p],
    );
    assert_eq!(j["kind"], "input");
    assert!(j["revert"].is_null());

    // A missing file to anchor is an I/O error; nothing is sent.
    let e = env.fail(
        8,
        &[
            "-a",
            "hospital-a",
            "anchor",
            "nofile.json",
            "--patient",
            &p,
            "-c",
            "labs",
            "--locator",
            "x",
        ],
    );
    assert!(e.contains("nofile.json"), "{e}");
    let e = env.fail(
        2,
        &[
            "-a",
            "hospital-a",
            "anchor",
            "nofile.json",
            "--patient",
            &p,
            "-c",
            "labs",
            "--locator",
            "",
        ],
    );
    assert!(e.contains("bad locator"), "{e}");

    // Usage errors come from clap with exit 2 and a hint.
    let out = env.run(&["grant"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--help"));
}

#[test]
fn node_chain_and_deployment_problems() {
    let env = Env::deployed();
    let p = env.addr("patient");
    let h = env.addr("hospital-a");

    let dead = format!("http://127.0.0.1:{}", free_port());
    let e = env.fail(
        4,
        &[
            "--rpc-url",
            &dead,
            "check",
            "--grantee",
            &h,
            "-c",
            "labs",
            "--patient",
            &p,
        ],
    );
    assert!(e.contains("cannot reach the node"), "{e}");
    let j = env.fail_json(4, &["--rpc-url", &dead, "participant", "show", &h]);
    assert_eq!(j["kind"], "rpc");
    let e = env.fail(2, &["--rpc-url", "not a url", "participant", "show", &h]);
    assert!(e.contains("bad RPC URL"), "{e}");

    let e = env.fail(
        5,
        &[
            "--chain-id",
            "1",
            "check",
            "--grantee",
            &h,
            "-c",
            "labs",
            "--patient",
            &p,
        ],
    );
    assert!(
        e.contains("expected chain id 1") && e.contains("31337"),
        "{e}"
    );
    assert!(
        env.json(&["--chain-id", "31337", "participant", "show", &h])["live"]
            .as_bool()
            .unwrap()
    );

    let e = env.fail(
        5,
        &[
            "--deployments",
            &env.path_str("elsewhere"),
            "participant",
            "show",
            &h,
        ],
    );
    assert!(e.contains("no deployment for chain 31337"), "{e}");

    let e = env.fail(5, &["-a", "gov", "deploy"]);
    assert!(e.contains("already deployed"), "{e}");

    // An account with no ether cannot pay for a transaction.
    env.new_account("broke", false);
    let e = env.fail(
        7,
        &["-a", "broke", "grant", &h, "-c", "labs", "--for", "1d"],
    );
    assert!(e.contains("insufficient funds"), "{e}");
}

#[test]
fn stale_deployment_after_a_chain_restart() {
    let env = Env::start();
    // A deployments file naming contracts that this chain does not have.
    env.write(
        "deployments/31337.json",
        r#"{"chainId":31337,"startBlock":0,"admin":"0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "participantRegistry":"0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "consentRegistry":"0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
            "recordRegistry":"0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0"}"#,
    );
    let e = env.fail(
        5,
        &[
            "participant",
            "show",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ],
    );
    assert!(e.contains("stale"), "{e}");
    env.write("deployments/31337.json", "{not json");
    let e = env.fail(
        5,
        &[
            "participant",
            "show",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        ],
    );
    assert!(e.contains("not valid"), "{e}");
}

#[test]
fn settings_precedence_flag_env_config() {
    let env = Env::deployed();
    let h = env.addr("hospital-a");
    let dead = format!("http://127.0.0.1:{}", free_port());
    env.write(
        "medrec.toml",
        &format!("rpc_url = \"{dead}\"\naccount = \"gov\"\n"),
    );
    let config = env.path_str("medrec.toml");

    // Config beats the default; the environment beats the config.
    let out = env
        .cmd(&["--config", &config, "participant", "show", &h])
        .env_remove("MEDREC_RPC_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "config's dead URL used");
    let out = env
        .cmd(&["--config", &config, "participant", "show", &h])
        .output()
        .unwrap();
    assert!(out.status.success(), "env URL beats config");
    // The flag beats the environment.
    let out = env
        .cmd(&[
            "--config",
            &config,
            "--rpc-url",
            &dead,
            "participant",
            "show",
            &h,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    // The config's account is used when no flag or env gives one.
    let out = env
        .cmd(&["--config", &config, "account", "address"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );
    // ~/.medrec/config.toml is read when present.
    env.write(".medrec/config.toml", "account = \"gov\"\n");
    assert_eq!(
        env.addr_default(),
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    );

    env.write("typo.toml", "rpc_ulr = \"x\"\n");
    let e = env.fail(
        2,
        &[
            "--config",
            &env.path_str("typo.toml"),
            "participant",
            "show",
            &h,
        ],
    );
    assert!(e.contains("unknown field"), "{e}");
    let e = env.fail(
        8,
        &[
            "--config",
            &env.path_str("nope.toml"),
            "participant",
            "show",
            &h,
        ],
    );
    assert!(e.contains("cannot read config file"), "{e}");
}
