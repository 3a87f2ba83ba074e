//! The web dashboards in Debian's headless Chromium, driven by playwright-core
//! (`tests/browser/dashboards.cjs`) against the test company's server: every page loads with no
//! console error and every chart draws with data, a filter changes the numbers and the URL (and
//! the number equals SQL's), the customer search opens a 7P profile, a viewer cannot open the
//! admin page. Screenshots go to `<target>/tmp/dashboards/`; each page's time to interactive is
//! printed, not asserted.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::serve::{Server, password};

/// The browser: `CHROMIUM`, or Debian's package, installed by `tests/browser/install-chromium`
/// when missing.
fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("CHROMIUM") {
        return PathBuf::from(path);
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if !debian.exists() {
        crate::install(
            "tests/browser/install-chromium",
            "install Debian's chromium or set CHROMIUM",
        );
    }
    debian
}

/// playwright-core from `tests/browser/package-lock.json`, installed with `npm ci` under the
/// target directory (not the clone) and reinstalled when the lock file changes.
fn playwright_core() -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-driver");
    let lock = std::fs::read_to_string(source.join("package-lock.json")).unwrap();
    let stamp = dir.join("installed.lock");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(lock.as_str()) {
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(source.join(file), dir.join(file)).unwrap();
        }
        let status = Command::new("npm")
            .args(["ci", "--ignore-scripts", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .status()
            .expect("npm runs (Node.js 20 or newer)");
        assert!(status.success(), "npm ci in {}", dir.display());
        std::fs::write(&stamp, lock).unwrap();
    }
    dir.join("node_modules/playwright-core")
}

#[test]
fn dashboards_load_filter_search_and_keep_viewers_out() {
    let browser = chromium();
    let driver = playwright_core();
    let server = Server::company(&[]);
    let screenshots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboards");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser/dashboards.cjs");
    let out = Command::new("node")
        .arg(&script)
        .env("TRIBUTARY_URL", &server.http)
        .env("PLAYWRIGHT_CORE", &driver)
        .env("CHROMIUM", &browser)
        .env("SCREENSHOTS", &screenshots)
        .env("ADMIN", format!("adam:{}", password("adam")))
        .env("VIEWER", format!("vera:{}", password("vera")))
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no report from the browser run\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    println!("screenshots: {}", screenshots.display());
    for (page, timing) in report["pages"].as_object().unwrap() {
        println!(
            "{page}: interactive {} ms after navigation ({} ms of queries and drawing)",
            timing["interactive_ms"], timing["route_ms"]
        );
    }
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\nstderr:\n{stderr}",
        serde_json::to_string_pretty(&report["failures"]).unwrap()
    );
    for page in [
        "overview",
        "customers",
        "products",
        "campaigns",
        "pipeline",
        "operations",
    ] {
        assert!(screenshots.join(format!("{page}.png")).exists(), "{page}.png saved");
    }
}
