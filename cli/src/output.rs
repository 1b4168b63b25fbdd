//! The one printer all output goes through.
//!
//! With `--json`, every run prints exactly one JSON document on stdout:
//! `{"version":1,"ok":true,"command":"...","data":{...}}` or
//! `{"version":1,"ok":false,"error":{"kind":"...","message":"...","revert":{...}|null}}`.
//! Otherwise results are lines on stdout and errors one line on stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::error::CliError;
use serde_json::{Value, json};

/// The version of the `--json` shape.
pub const JSON_VERSION: u32 = 1;

/// Where a command's results go.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
    quiet: bool,
}

impl Printer {
    /// A printer for `--json` or human output; `quiet` drops human progress lines.
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// Whether output is JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A progress line for humans (stderr), silent under `--json` and `-q`.
    pub fn progress(&self, line: &str) {
        if !self.json && !self.quiet {
            eprintln!("{line}");
        }
    }

    /// Prints a command's result: `data` under `--json`, else `human` (unless quiet).
    pub fn result(&self, command: &str, mut data: Value, human: &str) {
        if self.json {
            medrec_bindings::checksum_addresses(&mut data);
            let doc =
                json!({"version": JSON_VERSION, "ok": true, "command": command, "data": data});
            println!("{doc}");
        } else if !self.quiet && !human.is_empty() {
            println!("{}", human.trim_end());
        }
    }

    /// Prints a failure: one JSON document under `--json`, else one line on stderr.
    pub fn error(&self, err: &CliError) {
        if self.json {
            let revert = err.revert().map(|r| {
                let args: serde_json::Map<String, Value> = r
                    .args
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                    .collect();
                json!({"name": r.name, "args": args})
            });
            let doc = json!({
                "version": JSON_VERSION,
                "ok": false,
                "error": {"kind": err.kind(), "message": err.to_string(), "revert": revert},
            });
            println!("{doc}");
        } else {
            let line = err.to_string();
            eprintln!("error: {}", line.lines().next().unwrap_or_default());
        }
    }
}
