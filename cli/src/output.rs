//! The one printer all output goes through.
//!
//! With `--json`, every run prints exactly one JSON document on stdout:
//! `{"version":1,"ok":true,"command":"...","data":{...}}` or
//! `{"version":1,"ok":false,"error":{"kind":"...","message":"...","revert":{...}|null}}`.
//! Otherwise results are lines on stdout and errors one line on stderr.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use crate::error::CliError;
use comfy_table::{Table, presets::NOTHING};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

/// Human text for a table: a header row and rows, columns aligned by comfy-table, no borders
/// (so that the lines stay easy to `grep` and `cut`).
pub fn table<R, C>(header: &[&str], rows: R) -> String
where
    R: IntoIterator<Item = Vec<C>>,
    C: Into<comfy_table::Cell>,
{
    let mut t = Table::new();
    t.load_preset(NOTHING).set_header(header.to_vec());
    for row in rows {
        t.add_row(row);
    }
    for column in t.column_iter_mut() {
        column.set_padding((0, 2));
    }
    // comfy-table pads every line to the table's width; trailing blanks help no one.
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

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

    /// A progress bar on stderr for `total` steps of `what`: drawn by indicatif at a terminal,
    /// hidden under `--json` and `-q` and when stderr is not a terminal.
    pub fn bar(&self, what: &str, total: u64) -> ProgressBar {
        if self.json || self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        // A constant template: it parses, and the default style would do otherwise.
        if let Ok(style) = ProgressStyle::with_template("{msg} {pos}/{len} {wide_bar} {eta}") {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        bar
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

#[cfg(test)]
mod tests {
    #[test]
    fn tables_align_columns_without_borders_or_trailing_blanks() {
        let text = super::table(
            &["NAME", "ADDRESS"],
            [vec!["gov", "0xf39F"], vec!["hospital-a", "0x7099"]],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        let col = |l: &str| l.find("0x").or_else(|| l.find("ADDRESS"));
        assert_eq!(col(lines[0]), col(lines[1]), "{text}");
        assert_eq!(col(lines[1]), col(lines[2]), "{text}");
        assert!(lines.iter().all(|l| l == &l.trim()), "{text}");
        assert!(!text.contains('|') && !text.contains('+'), "{text}");
    }
}
