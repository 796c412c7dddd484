//! Tidy checks: rules about the source tree itself, read as text and checked by ordinary tests,
//! so nothing is enforced only in CI or in a reviewer's head.
//!
//! Each test names the file and line that breaks its rule and says what to do instead.
//! They read only files in this repository (no network, no build), so `cargo test --test tidy`
//! takes a moment; `scripts/test --fast` runs them with the unit tests.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The workspace root: this test lives in `crates/weft`.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().and_then(Path::parent).expect("crates/weft is two levels below the root").to_path_buf()
}

/// `path` relative to the workspace root, with `/` separators, as messages print it.
fn relative(path: &Path) -> String {
    path.strip_prefix(workspace_root()).unwrap_or(path).to_string_lossy().replace('\\', "/")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
}

/// Every `.rs` file under `dir` (recursively), sorted; none if `dir` does not exist.
fn rust_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if !matches!(name, "target" | "node_modules" | ".git") {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The directories of the workspace's crates (`crates/*` and `bench`), sorted.
fn crate_dirs() -> Vec<PathBuf> {
    let root = workspace_root();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/ exists")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    dirs.push(root.join("bench"));
    dirs.sort();
    dirs
}

/// Every `.rs` file under `src/` of every crate.
fn library_and_binary_sources() -> Vec<PathBuf> {
    crate_dirs().iter().flat_map(|dir| rust_files_under(&dir.join("src"))).collect()
}

/// A line's code with string literal contents blanked and any `//` comment cut, so a rule
/// does not match text inside a message or a comment. Strings that span lines are not tracked.
fn code_part(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    in_string = false;
                    out.push('"');
                }
                _ => out.push(' '),
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push('"');
            }
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// The lines (0-based) of `text` inside items marked `#[cfg(test)]` that open a block: from
/// the attribute to the closing brace at the item's own indentation (rustfmt's layout).
fn test_only_lines(text: &str) -> BTreeSet<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut inside = BTreeSet::new();
    let mut idx = 0;
    while idx < lines.len() {
        if lines[idx].trim() != "#[cfg(test)]" {
            idx += 1;
            continue;
        }
        let start = idx;
        let mut item = idx + 1;
        while item < lines.len() && lines[item].trim_start().starts_with("#[") {
            item += 1;
        }
        let Some(item_line) = lines.get(item) else { break };
        if !item_line.trim_end().ends_with('{') {
            idx = item + 1;
            continue;
        }
        let indent = &item_line[..item_line.len() - item_line.trim_start().len()];
        let mut end = item + 1;
        while end < lines.len() && lines[end] != format!("{indent}}}") {
            end += 1;
        }
        inside.extend(start..=end.min(lines.len() - 1));
        idx = end + 1;
    }
    inside
}

/// Source files that are test modules declared elsewhere with `#[cfg(test)] mod name;`.
fn test_module_files(sources: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut files = BTreeSet::new();
    for path in sources {
        let text = read(path);
        let lines: Vec<&str> = text.lines().collect();
        for (idx, line) in lines.iter().enumerate() {
            let Some(name) = line.trim().strip_prefix("mod ").and_then(|rest| rest.strip_suffix(';')) else { continue };
            if idx == 0 || lines[idx - 1].trim() != "#[cfg(test)]" {
                continue;
            }
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
            let dir = if matches!(stem, "lib" | "main" | "mod") { path.parent().unwrap().to_path_buf() } else { path.with_extension("") };
            files.insert(dir.join(format!("{name}.rs")));
            files.insert(dir.join(name).join("mod.rs"));
        }
    }
    files
}

/// One `[section]` of a Cargo.toml and the names of the keys (dependencies) in it.
fn dependency_sections(manifest: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            // `[dependencies.NAME]` declares NAME in a table of its own.
            match header.trim().rsplit_once("dependencies.") {
                Some((prefix, name)) => sections.push((format!("{prefix}dependencies"), vec![name.trim_matches('"').to_string()])),
                None => sections.push((header.trim().to_string(), Vec::new())),
            }
        } else if let (Some((_, keys)), Some((key, _))) = (sections.last_mut(), line.split_once('=')) {
            let key = key.trim();
            keys.push(key.split('.').next().unwrap_or(key).trim().trim_matches('"').to_string());
        }
    }
    sections
}

/// `(package name, path of its Cargo.toml)` for every workspace member.
fn workspace_packages() -> Vec<(String, PathBuf)> {
    crate_dirs()
        .iter()
        .map(|dir| {
            let path = dir.join("Cargo.toml");
            let manifest = read(&path);
            let name = manifest
                .lines()
                .skip_while(|line| line.trim() != "[package]")
                .find_map(|line| {
                    line.trim().strip_prefix("name").map(|rest| rest.trim_start_matches([' ', '=']).trim_matches('"').to_string())
                })
                .unwrap_or_else(|| panic!("{} has no package name", relative(&path)));
            (name, path)
        })
        .collect()
}

/// Which kind of dependency a Cargo.toml section declares, if any: `[dependencies]` and
/// `[target.'cfg(..)'.dependencies]` alike (build dependencies count
/// as normal ones: they are compiled into the build all the same).
fn dependency_kind(section: &str) -> Option<&'static str> {
    let table = section.rsplit_once('.').map_or(section, |(_, last)| last);
    match table {
        "dependencies" | "build-dependencies" => Some("normal"),
        "dev-dependencies" => Some("dev"),
        _ => None,
    }
}

/// Normal and build dependencies between workspace crates that exist today, `(from, to)`.
/// Adding one is a design decision: change the layering in ARCHITECTURE.md, then here.
///
/// Today's graph (normal dependencies only):
///
/// ```text
/// weft            -> weft-contract, weft-core, weft-governance, weft-http, weft-kafka, weft-registry
/// weft-http       -> weft-contract, weft-core, weft-governance, weft-registry
/// weft-kafka      -> weft-core, weft-governance, weft-log
/// weft-core       -> weft-contract, weft-governance, weft-log
/// weft-bench      -> weft-contract
/// weft-registry   -> weft-contract
/// weft-contract   -> (none)
/// weft-governance -> (none)
/// weft-log        -> (none)
/// ```
const NORMAL_EDGES: &[(&str, &str)] = &[
    // The binary wires every layer together.
    ("weft", "weft-core"),
    ("weft", "weft-http"),
    ("weft", "weft-kafka"),
    // The binary opens the registry's store and wires it to the broker as its schema sink
    // (`registry_port.rs`); it knows nothing of the registry's HTTP surface.
    ("weft", "weft-registry"),
    // `contract diff`, `principal`, `token`, `authz` use the pure libraries directly.
    ("weft", "weft-contract"),
    ("weft", "weft-governance"),
    ("weft-core", "weft-log"),
    ("weft-core", "weft-contract"),
    ("weft-core", "weft-governance"),
    ("weft-http", "weft-core"),
    ("weft-http", "weft-contract"),
    ("weft-http", "weft-governance"),
    // The registry's REST API (`weft-http/src/registry.rs`) over its store: only the HTTP
    // crate knows HTTP.
    ("weft-http", "weft-registry"),
    // The registry and the contracts share one compatibility-mode type.
    ("weft-registry", "weft-contract"),
    ("weft-kafka", "weft-core"),
    ("weft-kafka", "weft-governance"),
    // The Kafka edge re-encodes and checks RecordBatches with `weft_log::batch` (the codec) and
    // its limits; it opens no `PartitionLog`.
    ("weft-kafka", "weft-log"),
    // The bench compiles its own contract in-process (see bench/Cargo.toml).
    ("weft-bench", "weft-contract"),
];

/// Dev-dependencies between workspace crates that exist today; these may be looser than the
/// layering (a test may drive a higher layer), but each one is still a decision.
const DEV_EDGES: &[(&str, &str)] = &[
    // Rendering tests build stored batches with the log's codec; the code itself reaches
    // storage only through `weft-core`.
    ("weft-http", "weft-log"),
    // The binary's Kafka tests (`tests/it/kafka_idempotence.rs`) build idempotent record
    // batches with the log's codec to send over the wire; the binary itself does not use it.
    ("weft", "weft-log"),
];

/// Dependencies no allow-list entry may grant: storage knows no other crate, and the pure
/// libraries know nothing of the broker, its edges or the binary.
fn forbidden_edge(from: &str, to: &str) -> Option<&'static str> {
    const BROKER_CRATES: &[&str] = &["weft", "weft-core", "weft-log", "weft-http", "weft-kafka", "weft-registry"];
    match from {
        "weft-log" => Some("the storage engine depends on no workspace crate"),
        "weft-contract" | "weft-governance" if BROKER_CRATES.contains(&to) => {
            Some("the pure libraries (contracts, governance) know nothing of the broker, its storage or its edges")
        }
        _ if to == "weft" => Some("nothing depends on the binary"),
        _ => None,
    }
}

/// Only `weft-http` knows HTTP: no other crate of the workspace depends on an HTTP server
/// framework (the registry's REST API, the catalog and the produce API all live there), so
/// the broker, storage and the libraries can be reused behind another edge.
#[test]
fn only_the_http_crate_depends_on_an_http_framework() {
    const HTTP_FRAMEWORKS: &[&str] = &["axum", "hyper", "tower", "tower-http"];
    let mut problems = String::new();
    let mut http_crate_knows_axum = false;
    for (name, path) in workspace_packages() {
        for (section, keys) in dependency_sections(&read(&path)) {
            if dependency_kind(&section) != Some("normal") {
                continue;
            }
            for key in keys.iter().filter(|key| HTTP_FRAMEWORKS.contains(&key.as_str())) {
                if name == "weft-http" {
                    http_crate_knows_axum |= key == "axum";
                    continue;
                }
                let _ = writeln!(problems, "{}: [{section}] {key}: only weft-http knows HTTP; move the HTTP code there", relative(&path));
            }
        }
    }
    assert!(http_crate_knows_axum, "the manifest reader found no axum dependency in weft-http: the check itself is broken");
    assert!(problems.is_empty(), "{problems}");
}

/// Workspace crates depend on each other only along today's allow-listed edges, which follow
/// the layering in ARCHITECTURE.md (see the graph on `NORMAL_EDGES`); a new edge, or one that
/// breaks a layering rule outright, fails here, and an edge that disappeared must be removed
/// from the list so the list stays a true picture.
#[test]
fn crate_dependencies_follow_the_layering() {
    let packages = workspace_packages();
    assert!(packages.len() >= 9, "found only {} workspace crates: {packages:?}", packages.len());
    let names: BTreeSet<&str> = packages.iter().map(|(name, _)| name.as_str()).collect();
    let mut problems = String::new();
    let mut found: BTreeMap<&str, BTreeSet<(String, String)>> = BTreeMap::new();
    for (name, path) in &packages {
        for (section, keys) in dependency_sections(&read(path)) {
            let Some(kind) = dependency_kind(&section) else { continue };
            for key in keys.iter().filter(|key| names.contains(key.as_str())) {
                found.entry(kind).or_default().insert((name.clone(), key.clone()));
                if let Some(rule) = forbidden_edge(name, key) {
                    let _ = writeln!(
                        problems,
                        "{}: [{section}] {key}: {rule}; move the code that needs it to a layer that may know {key}",
                        relative(path)
                    );
                }
            }
        }
    }
    for (kind, allowed) in [("normal", NORMAL_EDGES), ("dev", DEV_EDGES)] {
        let found = found.remove(kind).unwrap_or_default();
        let allowed: BTreeSet<(String, String)> = allowed.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        for (from, to) in found.difference(&allowed) {
            let _ = writeln!(
                problems,
                "new {kind} dependency {from} -> {to}: if the layering in ARCHITECTURE.md allows it, add it to \
                 {}_EDGES in crates/weft/tests/tidy.rs with a comment saying why; otherwise reach {to} through a lower layer",
                kind.to_uppercase()
            );
        }
        for (from, to) in allowed.difference(&found) {
            let _ = writeln!(
                problems,
                "{kind} dependency {from} -> {to} is allowed in crates/weft/tests/tidy.rs but no longer exists: \
                 remove it from {}_EDGES",
                kind.to_uppercase()
            );
        }
    }
    assert!(problems.is_empty(), "crate dependencies break the layering:\n{problems}");
}

/// Every Rust file opens with a `//!` module doc saying what it owns (STYLE.md, practice 9).
#[test]
fn every_source_file_starts_with_a_module_doc() {
    let mut files = Vec::new();
    for dir in crate_dirs() {
        for sub in ["src", "tests", "examples", "fuzz/fuzz_targets"] {
            files.extend(rust_files_under(&dir.join(sub)));
        }
    }
    assert!(files.len() > 100, "found only {} Rust files; is the walk broken?", files.len());
    let mut problems = String::new();
    for path in &files {
        let text = read(path);
        if !text.starts_with("//!") {
            let first = text.lines().next().unwrap_or("");
            let _ = writeln!(
                problems,
                "{}:1: starts with {first:?}; begin the file with `//!` lines saying what the module owns and what it does not",
                relative(path)
            );
        }
    }
    assert!(problems.is_empty(), "files without a module doc:\n{problems}");
}

/// Readings of the wall clock that bypass the injected `Clock`.
const WALL_CLOCK_READS: &[&str] = &["SystemTime::now(", "OffsetDateTime::now_utc(", "OffsetDateTime::now_local("];

/// The core and the storage engine read wall-clock time only through the injected
/// `weft_log::Clock` (STYLE.md, practice 6), so retention, expiry and audit times are
/// deterministic in tests; the one real reading is `SystemClock`'s implementation.
#[test]
fn core_reads_time_only_through_the_clock() {
    let root = workspace_root();
    let clock_file = root.join("crates/weft-log/src/lib.rs");
    let clock_impl = "impl Clock for SystemClock {";
    assert!(read(&clock_file).contains(clock_impl), "{} no longer has `{clock_impl}`; update this test", relative(&clock_file));
    let mut problems = String::new();
    for path in ["crates/weft-core/src", "crates/weft-log/src"].iter().flat_map(|dir| rust_files_under(&root.join(dir))) {
        let text = read(&path);
        let mut in_clock_impl = false;
        for (idx, line) in text.lines().enumerate() {
            if path == clock_file && line.starts_with(clock_impl) {
                in_clock_impl = true;
            } else if in_clock_impl && line == "}" {
                in_clock_impl = false;
            }
            let code = code_part(line);
            if let Some(read) = WALL_CLOCK_READS.iter().find(|read| code.contains(*read))
                && !in_clock_impl
            {
                let _ = writeln!(
                    problems,
                    "{}:{}: `{read}..)` reads the wall clock; use the broker's clock (`Broker::clock()`, or an \
                     `Arc<dyn weft_log::Clock>` passed in) so tests can control time",
                    relative(&path),
                    idx + 1
                );
            }
        }
    }
    assert!(problems.is_empty(), "wall-clock reads outside the Clock:\n{problems}");
}

/// Inline byte-size arithmetic that predates this rule, in files the core's owner is reshaping:
/// `(file, expression)`. Each entry must still match, so fixing one means deleting it here.
const INLINE_BYTE_SIZES_ALLOWED: &[(&str, &str)] = &[];

/// The inline byte-size expressions on one line of code: `N * 1024`, `1024 * N`, and integer
/// shifts by 10, 20 or 30 bits (KiB, MiB, GiB).
fn inline_byte_sizes(code: &str) -> Vec<String> {
    let tokens: Vec<&str> = code
        .split(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | ',' | '[' | ']' | '{' | '}' | ';'))
        .filter(|t| !t.is_empty())
        .collect();
    let is_integer = |t: &str| t.starts_with(|c: char| c.is_ascii_digit()) && !t.contains('.');
    let mut found = Vec::new();
    for window in tokens.windows(3) {
        let [left, op, right] = [window[0], window[1], window[2]];
        let kib = op == "*" && is_integer(left) && is_integer(right) && (left == "1024" || right == "1024");
        let shift = op == "<<" && is_integer(left) && matches!(right, "10" | "20" | "30");
        if kib || shift {
            found.push(format!("{left} {op} {right}"));
        }
    }
    found
}

/// Byte budgets are named constants with the unit last (`..._BYTES_MAX`), declared in the module
/// that enforces them (STYLE.md, practice 3), never a `64 * 1024` in the middle of a call.
/// Tests and the bench are exempt; constant and static items are where such arithmetic belongs.
#[test]
fn byte_budgets_are_named_constants() {
    let sources = library_and_binary_sources();
    let test_modules = test_module_files(&sources);
    let bench = workspace_root().join("bench");
    let mut allowed_unused: BTreeSet<(&str, &str)> = INLINE_BYTE_SIZES_ALLOWED.iter().copied().collect();
    let mut problems = String::new();
    for path in sources.iter().filter(|path| !path.starts_with(&bench) && !test_modules.contains(*path)) {
        let text = read(path);
        let test_only = test_only_lines(&text);
        let file = relative(path);
        let mut in_constant_item = false;
        for (idx, line) in text.lines().enumerate() {
            let code = code_part(line);
            let item = code.trim_start();
            let item = ["pub(crate) ", "pub(super) ", "pub "].iter().find_map(|v| item.strip_prefix(v)).unwrap_or(item);
            if item.starts_with("const ") || item.starts_with("static ") {
                in_constant_item = true;
            }
            let in_constant = in_constant_item;
            if in_constant_item && code.trim_end().ends_with(';') {
                in_constant_item = false;
            }
            if in_constant || test_only.contains(&idx) {
                continue;
            }
            for expression in inline_byte_sizes(&code) {
                let allowed = INLINE_BYTE_SIZES_ALLOWED.iter().find(|(f, e)| *f == file && *e == expression);
                if let Some(entry) = allowed {
                    allowed_unused.remove(entry);
                    continue;
                }
                let _ = writeln!(
                    problems,
                    "{file}:{}: `{expression}` is an inline byte size; name it as a constant with the unit last \
                     (e.g. `const FETCH_BYTES_MAX: usize = {expression};`) in the module that enforces it, with a doc comment saying why",
                    idx + 1
                );
            }
        }
    }
    for (file, expression) in allowed_unused {
        let _ = writeln!(
            problems,
            "{file}: `{expression}` is allowed in INLINE_BYTE_SIZES_ALLOWED (crates/weft/tests/tidy.rs) but no longer appears: remove the entry"
        );
    }
    assert!(problems.is_empty(), "inline byte sizes:\n{problems}");
}

/// Modules that define stable error codes as `&str` constants.
const CODE_MODULES: &[&str] = &["codes", "code", "violation"];

/// `(NAME, "value")` if the line defines a code: `pub const NAME: &str = "value";`, or a row of
/// a `codes!` table, `NAME = "value" => Kind, ...`. A row whose value is another constant (a
/// re-use) defines nothing.
fn code_definition(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    let line = line.strip_prefix("pub ").unwrap_or(line);
    let line = line.strip_prefix("const ").unwrap_or(line);
    let name: String = line.chars().take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_').collect();
    if name.is_empty() || !name.starts_with(|c: char| c.is_ascii_uppercase()) {
        return None;
    }
    let rest = &line[name.len()..];
    let (_, value) = rest.split_once("= \"")?;
    let (value, _) = value.split_once('"')?;
    Some((name, value.to_string()))
}

/// Every code string defined in a code module: `(value, "file:line NAME")`.
fn code_definitions() -> Vec<(String, String)> {
    let mut definitions = Vec::new();
    for path in library_and_binary_sources() {
        let text = read(&path);
        let mut module_end: Option<String> = None;
        for (idx, line) in text.lines().enumerate() {
            let trimmed = line.trim();
            let opens_code_module = CODE_MODULES.iter().any(|name| {
                trimmed.strip_prefix("pub ").unwrap_or(trimmed).strip_prefix("mod ").and_then(|rest| rest.strip_suffix(" {")) == Some(name)
            });
            if module_end.is_none() && opens_code_module {
                let indent = &line[..line.len() - line.trim_start().len()];
                module_end = Some(format!("{indent}}}"));
            } else if module_end.as_deref() == Some(line) {
                module_end = None;
            } else if module_end.is_some()
                && let Some((name, value)) = code_definition(&line.replace("&'static str", "&str"))
            {
                definitions.push((value, format!("{}:{} {name}", relative(&path), idx + 1)));
            }
        }
    }
    definitions
}

/// A stable error code is defined in exactly one place, so two crates cannot give one code two
/// meanings and renaming one cannot silently leave its twin behind (STYLE.md: codes are
/// defined once). Crates that need another crate's code re-use its constant.
#[test]
fn error_codes_are_defined_once() {
    let definitions = code_definitions();
    let defined: BTreeSet<&str> = definitions.iter().map(|(value, _)| value.as_str()).collect();
    // The scan must see every code the typed tables know, or it is not looking where codes live.
    let tabled = weft_core::codes::ALL.iter().map(|(code, _)| *code).chain(weft_http::codes::ALL.iter().map(|(code, _, _)| *code));
    for code in tabled.chain([weft_contract::violation::REQUIRED_MISSING, weft_governance::codes::AUTHZ_DENIED]) {
        assert!(defined.contains(code), "the scan of code modules {CODE_MODULES:?} did not find {code:?}; update code_definitions()");
    }
    let mut by_value: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (value, place) in &definitions {
        by_value.entry(value.as_str()).or_default().push(place.as_str());
    }
    let mut problems = String::new();
    for (value, places) in by_value.iter().filter(|(_, places)| places.len() > 1) {
        let _ = writeln!(
            problems,
            "{value:?} is defined {} times: {}; keep the definition in the lowest crate and make the others re-use its constant",
            places.len(),
            places.join(", ")
        );
    }
    let registry = workspace_root().join("crates/weft-registry/src/error.rs");
    let mut registry_codes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (idx, line) in read(&registry).lines().enumerate() {
        if let Some((_variant, number)) = line.trim().strip_prefix("RegistryError::").and_then(|rest| rest.split_once(" => "))
            && let Some(number) = number.strip_suffix(',').filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        {
            registry_codes.entry(number.to_string()).or_default().push(idx + 1);
        }
    }
    assert!(registry_codes.len() > 10, "found only {} Confluent error codes in {}", registry_codes.len(), relative(&registry));
    for (number, lines) in registry_codes.iter().filter(|(_, lines)| lines.len() > 1) {
        let _ = writeln!(problems, "{}: Confluent error code {number} is given to several variants (lines {lines:?})", relative(&registry));
    }
    assert!(problems.is_empty(), "error codes defined more than once:\n{problems}");
}
