//! `medrec grants`, `patients`, `records`, `timeline`: listings read from the indexer's API.

use crate::error::{CliError, Result};
use crate::opts::Settings;
use crate::output::Printer;
use crate::units;
use alloy::transports::http::reqwest;
use clap::Args;
use serde_json::Value;
use std::time::Duration;

/// Options shared by the listings.
#[derive(Debug, Args)]
pub struct ListingOpts {
    /// Wait (up to 10 s) until the indexer has indexed this block: read your own writes
    #[arg(long)]
    pub min_block: Option<u64>,
}

/// `grants`.
#[derive(Debug, Args)]
pub struct GrantsArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `patients`.
#[derive(Debug, Args)]
pub struct PatientsArgs {
    /// The grantee [default: your account]
    #[arg(long)]
    pub grantee: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `records`.
#[derive(Debug, Args)]
pub struct RecordsArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

/// `timeline`.
#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// The patient [default: your account]
    #[arg(long)]
    pub patient: Option<String>,
    /// Only events from this block on
    #[arg(long)]
    pub from_block: Option<u64>,
    #[allow(missing_docs)]
    #[command(flatten)]
    pub opts: ListingOpts,
}

async fn get(settings: &Settings, path: &str, min_block: Option<u64>) -> Result<Value> {
    let base = settings.indexer_url.trim_end_matches('/');
    let mut url = format!("{base}{path}");
    if let Some(b) = min_block {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("min_block={b}"));
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| CliError::Rpc(format!("cannot build an HTTP client: {e}")))?;
    let resp = client.get(&url).send().await.map_err(|e| {
        CliError::Rpc(format!(
            "cannot reach the indexer at {base}: {}",
            first_line(&e)
        ))
    })?;
    let status = resp.status();
    let text = resp.text().await.map_err(|e| {
        CliError::Rpc(format!(
            "the indexer at {base} broke off: {}",
            first_line(&e)
        ))
    })?;
    let body: Value = serde_json::from_str(&text).map_err(|_| {
        CliError::Rpc(format!(
            "the indexer at {base} answered {status} with something that is not JSON"
        ))
    })?;
    if !status.is_success() {
        let msg = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(CliError::Rpc(format!(
            "the indexer at {base} answered {status}: {msg}"
        )));
    }
    Ok(body)
}

fn first_line(e: &dyn std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn names(v: &Value) -> String {
    v.as_array()
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(","))
        .unwrap_or_default()
}

fn time(v: &Value) -> String {
    v.as_u64()
        .map(units::format_time)
        .unwrap_or_else(|| "-".into())
}

/// Runs `grants`.
pub async fn run_grants(a: GrantsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let body = get(
        settings,
        &format!("/v1/patients/{patient}/grants"),
        a.opts.min_block,
    )
    .await?;
    let mut lines = vec![format!(
        "grants of {patient} (as of block {})",
        s(&body["block"])
    )];
    for g in body["grants"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}  {}  {}  {} .. {}  {}",
            s(&g["grantee"]),
            names(&g["categories"]),
            s(&g["purpose"]),
            time(&g["notBefore"]),
            time(&g["expiresAt"]),
            if g["live"] == true {
                "live"
            } else {
                "not live"
            }
        ));
    }
    if lines.len() == 1 {
        lines.push("  none".into());
    }
    out.result("grants", body, &lines.join("\n"));
    Ok(())
}

/// Runs `patients`.
pub async fn run_patients(a: PatientsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let grantee = super::address_or_own(a.grantee.as_deref(), "grantee", settings)?;
    let body = get(
        settings,
        &format!("/v1/grantees/{grantee}/patients"),
        a.opts.min_block,
    )
    .await?;
    let mut lines = vec![format!(
        "patients who granted {grantee} access (as of block {})",
        s(&body["block"])
    )];
    for g in body["patients"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}  {}  until {}  {}",
            s(&g["patient"]),
            names(&g["categories"]),
            time(&g["expiresAt"]),
            if g["live"] == true {
                "live"
            } else {
                "not live"
            }
        ));
    }
    if lines.len() == 1 {
        lines.push("  none".into());
    }
    out.result("patients", body, &lines.join("\n"));
    Ok(())
}

/// Runs `records`.
pub async fn run_records(a: RecordsArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let body = get(
        settings,
        &format!("/v1/patients/{patient}/pointers"),
        a.opts.min_block,
    )
    .await?;
    let mut lines = vec![format!(
        "records of {patient} (as of block {})",
        s(&body["block"])
    )];
    for p in body["pointers"].as_array().into_iter().flatten() {
        let superseded = match &p["supersededBy"] {
            Value::Null => String::new(),
            v => format!("  superseded by {}", s(v)),
        };
        lines.push(format!(
            "  {}  {}  held by {}  at {}{superseded}",
            s(&p["recordId"]),
            s(&p["category"]),
            s(&p["holder"]),
            s(&p["locator"])
        ));
    }
    if lines.len() == 1 {
        lines.push("  none".into());
    }
    out.result("records", body, &lines.join("\n"));
    Ok(())
}

/// Runs `timeline`.
pub async fn run_timeline(a: TimelineArgs, settings: &Settings, out: Printer) -> Result<()> {
    let patient = super::address_or_own(a.patient.as_deref(), "patient", settings)?;
    let mut path = format!("/v1/patients/{patient}/timeline");
    if let Some(b) = a.from_block {
        path.push_str(&format!("?from_block={b}"));
    }
    let body = get(settings, &path, a.opts.min_block).await?;
    let mut lines = vec![format!(
        "what happened to {patient}'s records (as of block {})",
        s(&body["block"])
    )];
    for e in body["events"].as_array().into_iter().flatten() {
        let d = &e["data"];
        let what = match e["type"].as_str().unwrap_or_default() {
            "granted" => format!(
                "granted {} {} until {}",
                s(&d["grantee"]),
                names(&serde_json::json!(medrec_bindings::category_names(
                    d["categoryMask"].as_u64().unwrap_or(0)
                ))),
                time(&d["expiresAt"])
            ),
            "revoked" => format!("revoked {}", s(&d["grantee"])),
            "guardian-set" => format!("named guardian {}", s(&d["guardian"])),
            "guardian-removed" => format!("removed guardian {}", s(&d["guardian"])),
            "break-glass-opened" => {
                format!(
                    "BREAK-GLASS by {} until {}",
                    s(&d["provider"]),
                    time(&d["expiresAt"])
                )
            }
            "break-glass-closed" => format!("break-glass of {} closed", s(&d["provider"])),
            "pointer-anchored" => format!(
                "record {} ({}) anchored by {}",
                s(&d["recordId"]),
                d["category"]
                    .as_u64()
                    .map(|c| medrec_bindings::category_name(c as u8))
                    .unwrap_or_default(),
                s(&d["holder"])
            ),
            "pointer-superseded" => format!(
                "record {} superseded by {}",
                s(&d["oldRecordId"]),
                s(&d["newRecordId"])
            ),
            other => other.to_string(),
        };
        lines.push(format!("  block {:>6}  {what}", s(&e["block"])));
    }
    if lines.len() == 1 {
        lines.push("  nothing yet".into());
    }
    out.result("timeline", body, &lines.join("\n"));
    Ok(())
}
