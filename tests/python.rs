//! Python with DuckDB, polars and delta-rs for the tests and benchmarks that compare with them
//! (shared by `tests/main.rs` and `api/benches/`).

use std::path::Path;
use std::process::Command;

/// Python with the packages of `tests/requirements.txt` (DuckDB, polars, delta-rs), in a virtual
/// environment under the target directory, made on first use; it sees the system's packages too,
/// so what is installed already is not fetched again.
pub fn python() -> Command {
    static READY: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let venv = READY.get_or_init(|| {
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python-venv");
        let requirements = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/requirements.txt");
        let wanted = std::fs::read_to_string(&requirements).expect("tests/requirements.txt");
        let stamp = venv.join("requirements.installed");
        if std::fs::read_to_string(&stamp).ok().as_deref() != Some(wanted.as_str()) {
            let made = Command::new("python3")
                .args(["-m", "venv", "--system-site-packages"])
                .arg(&venv)
                .status()
                .expect("python3 runs");
            assert!(made.success(), "python3 -m venv {}", venv.display());
            let installed = Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements)
                .status()
                .expect("pip runs");
            assert!(installed.success(), "pip install -r {}", requirements.display());
            std::fs::write(&stamp, wanted).unwrap();
        }
        venv
    });
    Command::new(venv.join("bin/python"))
}
