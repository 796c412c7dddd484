//! `weft apply -f PATH... [--dry-run]`: sends resource files (or every `*.yaml`, `*.yml` and
//! `*.json` below a directory) to the server and prints the plan. Exits non-zero when
//! anything is refused; then nothing was changed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value, json};

use crate::client::Client;

/// Most files one apply sends.
const FILES_MAX: usize = 1_000;

#[derive(Args)]
pub struct ApplyArgs {
    /// Files or directories of resources (ODCS contracts, ODPS products, Weft domains and policies).
    #[arg(short = 'f', long = "file", required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Print the plan without changing anything.
    #[arg(long)]
    dry_run: bool,
    /// Print the plan as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(client: &Client, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let mut paths = Vec::new();
    for path in &args.files {
        collect_files(path, &mut paths)?;
    }
    if paths.len() > FILES_MAX {
        anyhow::bail!("apply takes at most {FILES_MAX} files at once, found {}", paths.len());
    }
    let mut sources = Vec::new();
    for path in &paths {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        sources.push(json!({ "name": path.display().to_string(), "text": text }));
    }
    let body = json!({ "sources": sources, "dry_run": args.dry_run });
    let plan = client.post_json_any_status("/api/v1/apply", &body)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print_plan(&plan);
    }
    let refused = plan["resources"].as_array().is_some_and(|r| r.iter().any(|r| r["action"] == "refused"));
    Ok(if refused || plan.get("resources").is_none() { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for entry in entries {
            if entry.is_dir() || entry.extension().is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json") {
                collect_files(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_path_buf());
    }
    Ok(())
}

fn print_plan(plan: &Value) {
    if let Some(error) = plan.get("error").filter(|_| plan.get("resources").is_none()) {
        println!("error: {} {}", error["code"].as_str().unwrap_or(""), error["message"].as_str().unwrap_or(""));
        return;
    }
    for resource in plan["resources"].as_array().into_iter().flatten() {
        let action = resource["action"].as_str().unwrap_or("?");
        let version = resource["version"].as_str().map(|v| format!(" {v}")).unwrap_or_default();
        println!(
            "{action:<9} {} {}{version}  ({}#{})",
            resource["kind"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or(""),
            resource["source"].as_str().unwrap_or(""),
            resource["document"]
        );
        if let Some(streams) = resource["streams"].as_array().filter(|s| !s.is_empty()) {
            let names: Vec<&str> = streams.iter().filter_map(Value::as_str).collect();
            println!("          streams: {}", names.join(", "));
        }
        for change in resource["schema_changes"].as_array().into_iter().flatten() {
            let marker = if change["breaking"] == true { "BREAKING" } else { "ok" };
            println!(
                "          {marker:<8} {}: {} ({})",
                change["field"].as_str().unwrap_or(""),
                change["change"].as_str().unwrap_or(""),
                change["reason"].as_str().unwrap_or("")
            );
        }
        if let Some(moved) = resource.get("domain_move") {
            let domain = |side: &str| moved[side].as_str().unwrap_or("(none)").to_string();
            println!("          MOVES    domain {} -> {} (needs apply on both domains)", domain("from"), domain("to"));
        }
        for change in resource["governance_changes"].as_array().into_iter().flatten() {
            println!(
                "          GOVERNANCE {} {}: classification {} -> {}",
                change["stream"].as_str().unwrap_or(""),
                change["field"].as_str().unwrap_or(""),
                change["dropped_classification"].as_str().unwrap_or(""),
                change["new_classification"].as_str().unwrap_or("none")
            );
        }
        for change in resource["changes"].as_array().into_iter().flatten().take(50) {
            println!(
                "          {}: {} -> {}",
                change["path"].as_str().unwrap_or(""),
                change.get("old").unwrap_or(&Value::Null),
                change.get("new").unwrap_or(&Value::Null)
            );
        }
        if let Some(error) = resource.get("error") {
            let position = match (error.get("line"), error.get("path")) {
                (Some(line), _) => format!(" at line {line}"),
                (None, Some(path)) => format!(" at {}", path.as_str().unwrap_or("")),
                _ => String::new(),
            };
            println!("          {}: {}{position}", error["code"].as_str().unwrap_or(""), error["message"].as_str().unwrap_or(""));
        }
    }
    match (plan["dry_run"].as_bool(), plan["applied"].as_bool()) {
        (Some(true), _) => println!("dry run: nothing was changed"),
        (_, Some(true)) => println!("applied"),
        _ => println!("refused: nothing was changed"),
    }
}
