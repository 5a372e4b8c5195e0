//! The module graph of `app`, as `.ci/import-graph` draws it from the code: shown in
//! docs/architecture.md, free of cycles, and with the pattern (`dsql`) and the stand-in
//! (`local`) depending on nothing else of the crate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace's root directory.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("app/ has a parent")
        .to_path_buf()
}

/// What `.ci/import-graph` prints.
fn drawn_graph() -> String {
    let output = Command::new("bash")
        .arg(workspace().join(".ci/import-graph"))
        .output()
        .expect("bash runs .ci/import-graph");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("the graph is UTF-8")
}

/// Each module and the modules (and workspace crates) it names.
fn edges(graph: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in graph.lines().skip(1) {
        let (from, to) = line
            .trim()
            .split_once(" --> ")
            .unwrap_or_else(|| panic!("not an edge: {line:?}"));
        edges
            .entry(from.to_owned())
            .or_default()
            .insert(to.to_owned());
    }
    edges
}

#[test]
fn the_documented_graph_is_the_one_the_code_draws() {
    let graph = drawn_graph();
    let docs = std::fs::read_to_string(workspace().join("docs/architecture.md"))
        .expect("docs/architecture.md is readable");
    let block = format!("```mermaid\n{graph}```");
    assert!(
        docs.contains(&block),
        "docs/architecture.md does not show the current graph; put this block in it:\n{block}"
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let edges = edges(&drawn_graph());
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit<'a>(
        module: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if let Some(start) = path.iter().position(|on_path| *on_path == module) {
            panic!("cycle: {} -> {module}", path[start..].join(" -> "));
        }
        if !done.insert(module) {
            return;
        }
        path.push(module);
        for next in edges.get(module).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        visit(module, &edges, &mut Vec::new(), &mut done);
    }
    assert!(done.contains("bin") && done.contains("dsql"), "{edges:?}");
}

#[test]
fn the_pattern_and_the_stand_in_depend_on_nothing_else_of_app() {
    let edges = edges(&drawn_graph());
    for module in ["dsql", "local"] {
        let names: Vec<&String> = edges
            .get(module)
            .into_iter()
            .flatten()
            .filter(|to| to.as_str() != "migration")
            .collect();
        assert!(names.is_empty(), "{module} depends on {names:?}");
    }
    for (module, names) in &edges {
        assert!(!names.contains("bin"), "{module} depends on the command");
    }
}
