//! The layout rules of DEVELOPERS.md, checked on the source: subsystems depend downward
//! only (no import cycle between `core::db`, `core::pipeline`, ..., `session`, `tui`), and
//! `core` names no terminal, async runtime or llama.cpp crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `core/pipeline/run.rs` -> `core::pipeline`; `tui/app/mod.rs` -> `tui`.
fn subsystem(parts: &[&str]) -> String {
    match parts {
        ["core", sub, ..] => format!("core::{}", sub.trim_end_matches(".rs")),
        [top, ..] => top.trim_end_matches(".rs").to_string(),
        [] => String::new(),
    }
}

/// Each subsystem's imports of other subsystems, from code outside `#[cfg(test)]`.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let parts: Vec<&str> = relative.split('/').collect();
        let from = subsystem(&parts);
        let text = std::fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let path: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let named: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
            let to = subsystem(&named);
            if !to.is_empty() && to != from {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, target: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack = vec![from.to_string()];
    while let Some(node) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == target {
                return true;
            }
            if seen.insert(next.clone()) {
                stack.push(next.clone());
            }
        }
    }
    false
}

#[test]
fn subsystems_depend_downward_only() {
    let graph = dependencies();
    assert!(graph.contains_key("core::pipeline"), "{graph:?}");
    let cycles: Vec<String> = graph
        .iter()
        .flat_map(|(from, targets)| targets.iter().map(move |to| (from, to)))
        .filter(|(from, to)| reaches(&graph, to, from))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
    for (from, targets) in &graph {
        if from.starts_with("core") {
            let outside: Vec<&String> = targets.iter().filter(|t| !t.starts_with("core")).collect();
            assert!(outside.is_empty(), "{from} imports {outside:?}");
        }
    }
}

#[test]
fn core_names_no_terminal_runtime_or_llama_crate() {
    let core = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files = Vec::new();
    sources(&core, &mut files);
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for forbidden in ["ratatui", "crossterm", "llama_cpp", "tokio::", "axum"] {
            assert!(
                !text.contains(forbidden),
                "{} names {forbidden}",
                file.display()
            );
        }
    }
}

#[test]
fn only_the_server_names_the_async_runtime() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    for file in files {
        let relative = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative.starts_with("server/") || relative == "commands/serve.rs" {
            continue;
        }
        // The synchronous PostgreSQL client's TLS adapter is named after the crate it
        // plugs into; it starts no runtime of its own.
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("tokio_postgres_rustls", "");
        for forbidden in ["tokio", "axum"] {
            assert!(!text.contains(forbidden), "{relative} names {forbidden}");
        }
    }
}
