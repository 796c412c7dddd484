//! `weft contract diff OLD NEW`: the compatibility analysis apply would make, for two files,
//! without a server. Exits non-zero when NEW breaks the compatibility mode.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use weft_contract::{CompatibilityMode, CompiledContract, DataContract, Document};

#[derive(Subcommand)]
pub enum ContractCommand {
    /// Compare two versions of a contract field by field and judge compatibility.
    Diff {
        old: PathBuf,
        new: PathBuf,
        /// Compatibility mode (default: the new contract's `weft.compatibility`, else BACKWARD).
        #[arg(long)]
        mode: Option<String>,
    },
}

fn load(path: &PathBuf) -> anyhow::Result<DataContract> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let documents = weft_contract::parse_documents(&text, &path.display().to_string()).map_err(|error| {
        let line = error.line.map(|l| format!(" line {l}")).unwrap_or_default();
        anyhow::anyhow!("{}{line}: {}: {} (at {})", error.source_name, error.code, error.message, error.path)
    })?;
    documents
        .into_iter()
        .find_map(|document| match document {
            Document::Contract(contract) => Some(*contract),
            _ => None,
        })
        .with_context(|| format!("{} holds no DataContract", path.display()))
}

pub fn run(command: ContractCommand) -> anyhow::Result<ExitCode> {
    let ContractCommand::Diff { old, new, mode } = command;
    let (old_contract, new_contract) = (load(&old)?, load(&new)?);
    let compile =
        |contract: &DataContract| CompiledContract::compile_topics(contract).map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message));
    let (old_topics, new_topics) = (compile(&old_contract)?, compile(&new_contract)?);
    if new_topics.is_empty() {
        bail!("{} has no schema object with physicalType: topic", new.display());
    }
    let mut compatible = true;
    for topic in &new_topics {
        let mode = match &mode {
            Some(text) => CompatibilityMode::parse(text).with_context(|| format!("unknown compatibility mode {text}"))?,
            None => topic.settings().compatibility_mode(),
        };
        let stream = topic.stream_name().unwrap_or(topic.object_name());
        let Some(previous) = old_topics.iter().find(|t| t.stream_name() == topic.stream_name()) else {
            println!("{stream}: new stream (no earlier version to compare)");
            continue;
        };
        let report = weft_contract::check_compatibility(std::slice::from_ref(previous), topic, mode);
        println!(
            "{stream}: {} -> {} under {}: {}",
            old_contract.version,
            new_contract.version,
            mode.name(),
            if report.compatible { "compatible" } else { "INCOMPATIBLE" }
        );
        for checked in &report.changes {
            let change = &checked.change;
            let marker = if checked.breaks_mode { "BREAKING" } else { "ok" };
            let breaks = match (change.breaks_backward, change.breaks_forward) {
                (true, true) => "breaks readers and writers",
                (true, false) => "breaks readers of old data",
                (false, true) => "breaks old readers of new data",
                (false, false) => "safe",
            };
            println!("  {marker:<8} {}: {} ({breaks}; {})", change.path, change.description, change.reason);
        }
        compatible &= report.compatible;
    }
    Ok(if compatible { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
