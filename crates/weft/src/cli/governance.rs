//! `weft principal|token|authz|audit`: governance from the command line.
//!
//! `token create` prints the new token alone on stdout so scripts can capture it.
//! `audit verify --data-dir DIR` works offline (with the server stopped) by reading the audit
//! stream's segments directly; without `--data-dir` it asks the running server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::Client;

#[derive(Subcommand)]
pub enum PrincipalCommand {
    /// Create a principal (a person or service that authenticates with tokens).
    Create {
        name: String,
        /// Domains whose team the principal belongs to.
        #[arg(long = "domain")]
        domains: Vec<String>,
    },
    /// List principals.
    List,
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token; prints it alone on stdout.
    Create {
        #[arg(long)]
        principal: String,
        /// Lifetime such as 30d or 12h (default: no expiry).
        #[arg(long)]
        expires: Option<String>,
    },
    /// List tokens (never their secrets).
    List {
        #[arg(long)]
        principal: Option<String>,
    },
    /// Revoke a token by id; takes effect at once.
    Revoke { id: String },
}

#[derive(Subcommand)]
pub enum AuthzCommand {
    /// Print the Cedar schema policies are written against.
    Schema,
    /// Explain whether a principal may do an action on a resource, and which policies decided.
    Explain {
        #[arg(long)]
        principal: String,
        #[arg(long)]
        action: String,
        /// `Weft::Stream::"orders"` or `stream:orders`, `product:ID`, `domain:NAME`, `group:NAME`.
        #[arg(long)]
        resource: String,
    },
}

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain and report the first broken entry (exit 1 if broken).
    Verify {
        /// Verify offline from a data directory instead of asking the server.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// A head recorded earlier (`weft audit head`, kept outside the server): fail unless the
        /// chain still passes through it.
        #[arg(long, value_name = "HASH")]
        expect_head: Option<String>,
    },
    /// Print the verified chain's head (`seq` and `hash`), to record outside the server and
    /// check later with `weft audit verify --expect-head HASH`.
    Head {
        /// Read it offline from a data directory instead of asking the server.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Search entries.
    Search {
        #[arg(long)]
        principal: Option<String>,
        #[arg(long)]
        action: Option<String>,
        #[arg(long)]
        resource: Option<String>,
        #[arg(long)]
        decision: Option<String>,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
    },
}

fn print(value: &Value) -> anyhow::Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(ExitCode::SUCCESS)
}

pub fn principal(client: &Client, command: PrincipalCommand) -> anyhow::Result<ExitCode> {
    match command {
        PrincipalCommand::Create { name, domains } => {
            print(&client.post_json("/api/v1/principals", &json!({ "name": name, "domains": domains }))?)
        }
        PrincipalCommand::List => print(&client.get("/api/v1/principals")?),
    }
}

pub fn token(client: &Client, command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Create { principal, expires } => {
            let created = client.post_json("/api/v1/tokens", &json!({ "principal": principal, "expires": expires }))?;
            println!("{}", created["token"].as_str().unwrap_or_default());
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::List { principal } => {
            let query = principal.map(|p| format!("?principal={}", super::segment(&p))).unwrap_or_default();
            print(&client.get(&format!("/api/v1/tokens{query}"))?)
        }
        TokenCommand::Revoke { id } => print(&client.delete(&format!("/api/v1/tokens/{}", super::segment(&id)))?),
    }
}

pub fn authz(client: &Client, command: AuthzCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuthzCommand::Schema => {
            print!("{}", weft_governance::authz::SCHEMA);
            Ok(ExitCode::SUCCESS)
        }
        AuthzCommand::Explain { principal, action, resource } => {
            let answer =
                client.post_json("/api/v1/authz/explain", &json!({ "principal": principal, "action": action, "resource": resource }))?;
            println!("{}", answer["explanation"].as_str().unwrap_or_default().trim_end());
            Ok(if answer["allowed"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

pub fn audit(client: &Client, command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { data_dir: Some(data_dir), expect_head } => {
            let report = verify_offline(&data_dir, expect_head.as_deref())?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        AuditCommand::Verify { data_dir: None, expect_head } => {
            let query = expect_head.map(|hash| format!("?expect_head={}", super::segment(&hash))).unwrap_or_default();
            let report = client.get(&format!("/api/v1/audit/verify{query}"))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(if report["ok"] == true { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        AuditCommand::Head { data_dir } => {
            let report = match data_dir {
                Some(data_dir) => verify_offline(&data_dir, None)?,
                None => client.get("/api/v1/audit/verify")?,
            };
            if report["ok"] != true {
                eprintln!(
                    "weft: the audit chain does not verify; its head is not worth recording:\n{}",
                    serde_json::to_string_pretty(&report)?
                );
                return Ok(ExitCode::FAILURE);
            }
            println!("{}", serde_json::to_string(&report["head"])?);
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Search { principal, action, resource, decision, since, until } => {
            let params: Vec<String> = [
                ("principal", principal),
                ("action", action),
                ("resource", resource),
                ("decision", decision),
                ("since", since),
                ("until", until),
            ]
            .into_iter()
            .filter_map(|(name, value)| value.map(|v| format!("{name}={}", super::segment(&v))))
            .collect();
            let query = if params.is_empty() { String::new() } else { format!("?{}", params.join("&")) };
            print(&client.get(&format!("/api/v1/audit{query}"))?)
        }
    }
}

/// Reads `_weft.audit` straight from its segments, read-only (a torn or tampered log is
/// reported, never repaired), and checks the chain against `audit.head`.
fn verify_offline(data_dir: &std::path::Path, expect_head: Option<&str>) -> anyhow::Result<serde_json::Value> {
    use weft_governance::audit::{AUDIT_STREAM, chain_passes_through, read_head, verify};
    let read = weft_core::offline::read_record_values(data_dir, AUDIT_STREAM, 0)
        .map_err(|error| anyhow::anyhow!("reading the audit log under {}: {error}", data_dir.display()))?;
    let entries = read.values;
    let head = read_head(data_dir).map_err(|error| anyhow::anyhow!("{error}"))?;
    let report = verify(entries.iter().map(|(offset, bytes)| (*offset, bytes.as_slice())), head.as_ref());
    let mut ok = report.ok && read.damage.is_none();
    let mut json = json!({
        "ok": ok,
        "entries": report.n_entries,
        "first_broken": report.first_broken.as_ref().map(|(offset, reason)| json!({ "offset": offset, "reason": reason })),
        "entries_after_head": report.n_after_head,
        "head": report.last.as_ref().map(|head| json!({ "seq": head.seq, "hash": head.hash })),
        "damage": read.damage,
    });
    if let Some(expected) = expect_head {
        let found = chain_passes_through(entries.iter().map(|(offset, bytes)| (*offset, bytes.as_slice())), expected);
        ok &= found;
        json["expected_head"] = json!({ "hash": expected, "found": found });
        json["ok"] = json!(ok);
    }
    Ok(json)
}
