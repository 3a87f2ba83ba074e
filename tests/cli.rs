//! The command line itself: help, global options, configuration.

use crate::{run, stderr, stdout, tributary};

#[test]
fn help_lists_every_subcommand_with_one_line() {
    let out = stdout(&run(tributary().arg("--help"), true));
    for (command, words) in [
        ("generate", "sample company"),
        ("demo", "sample company"),
        ("config", "configuration"),
    ] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(command))
            .unwrap_or_else(|| panic!("--help lists {command}:\n{out}"));
        assert!(line.contains(words), "{command}: {line}");
    }
    assert!(
        out.contains("--config <FILE>") && out.contains("--data-dir <DIR>"),
        "{out}"
    );
    // Global options are accepted after any subcommand, too.
    let sub = stdout(&run(tributary().args(["generate", "--help"]), true));
    assert!(sub.contains("--data-dir <DIR>") && sub.contains("--customers"), "{sub}");
}

#[test]
fn configuration_layers_file_environment_and_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tributary.toml");
    std::fs::write(
        &file,
        "data_dir = \"/from/file\"\n[limits]\nmemory_mb = 512\nmax_result_rows = 10\n",
    )
    .unwrap();

    let defaults = stdout(&run(tributary().arg("config"), true));
    assert!(defaults.contains("data_dir = \"./tributary-data\""), "{defaults}");
    assert!(defaults.contains("addr = \"127.0.0.1:8080\""), "{defaults}");

    let layered = stdout(&run(
        tributary()
            .args(["config", "--config"])
            .arg(&file)
            .env("TRIBUTARY_LIMITS__MEMORY_MB", "4096")
            .env("TRIBUTARY_PG__ADDR", "127.0.0.1:6543"),
        true,
    ));
    assert!(layered.contains("data_dir = \"/from/file\""), "{layered}");
    assert!(
        layered.contains("memory_mb = 4096"),
        "environment beats file: {layered}"
    );
    assert!(
        layered.contains("max_result_rows = 10"),
        "file beats defaults: {layered}"
    );
    assert!(layered.contains("127.0.0.1:6543"), "{layered}");

    let flagged = stdout(&run(
        tributary()
            .args(["--data-dir", "/from/flag", "config", "--config"])
            .arg(&file)
            .env("TRIBUTARY_DATA_DIR", "/from/env"),
        true,
    ));
    assert!(
        flagged.contains("data_dir = \"/from/flag\""),
        "the flag beats everything: {flagged}"
    );

    let via_env = stdout(&run(tributary().arg("config").env("TRIBUTARY_CONFIG", &file), true));
    assert!(
        via_env.contains("/from/file"),
        "TRIBUTARY_CONFIG names the file: {via_env}"
    );
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.toml");
    std::fs::write(&file, "[limits]\nmemory_mb = \"plenty\"\n").unwrap();
    let err = stderr(&run(tributary().arg("config").arg("--config").arg(&file), false));
    assert!(err.contains("broken.toml") && err.contains("memory_mb"), "{err}");

    std::fs::write(&file, "[limitz]\n").unwrap();
    let err = stderr(&run(tributary().arg("config").arg("--config").arg(&file), false));
    assert!(err.contains("limitz"), "unknown keys are named: {err}");

    let err = stderr(&run(
        tributary().args(["config", "--config", "/no/such/file.toml"]),
        false,
    ));
    assert!(err.contains("/no/such/file.toml"), "{err}");
}

#[test]
fn a_mistyped_environment_variable_is_reported() {
    let output = run(tributary().arg("config").env("TRIBUTARY_LIMIT__MEMORY_MB", "1"), true);
    let err = stderr(&output);
    assert!(
        err.contains("ignoring environment variable TRIBUTARY_LIMIT__MEMORY_MB"),
        "{err}"
    );
    assert!(stdout(&output).contains("memory_mb = 2048"), "the typo changes nothing");
}
