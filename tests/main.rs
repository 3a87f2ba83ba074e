//! End-to-end tests: they run the `tributary` binary as a user would, on real files.

mod cli;
mod dashboards;
mod generate;
mod identity;
mod ingest;
mod marts;
mod models;
mod pull;
mod serve;
mod sql;

use std::path::Path;
use std::process::{Command, Output};

/// The binary under test, with a clean environment: no configuration or log settings leak in
/// from the developer's shell.
pub fn tributary() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tributary"));
    for (key, _) in std::env::vars() {
        if key.starts_with("TRIBUTARY_") {
            command.env_remove(key);
        }
    }
    command
}

/// Run to completion and return the output, failing with both streams if the exit is not `ok`.
pub fn run(command: &mut Command, ok: bool) -> Output {
    let output = command.output().expect("the tributary binary starts");
    assert_eq!(
        output.status.success(),
        ok,
        "{command:?} exited {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Standard output as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

/// Standard error as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// Run one of the tests' install scripts (`tests/browser/install-chromium`, ...), which install a
/// Debian package with apt; `what` says how to do without it when it fails.
pub fn install(script: &str, what: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(script);
    let status = Command::new(&script)
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    assert!(status.success(), "{} failed: {what}", script.display());
}

/// Data rows of a CSV file (lines minus the header).
pub fn data_rows(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
        - 1
}

/// One text field of every object in a JSON list (`[{"kind": "churn"}, ...]` -> `["churn", ...]`).
pub fn texts<'a>(list: &'a serde_json::Value, field: &str) -> Vec<&'a str> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|item| item[field].as_str().unwrap_or_else(|| panic!("`{field}` of {item}")))
        .collect()
}

#[path = "python.rs"]
mod python_env;
pub use python_env::python;
