//! Versioned model artefacts under `<data-dir>/models/<kind>/v<NNNN>.json`: the fitted parameters
//! with the report that earned them (metrics, features, training window, baseline). Written to a
//! temporary file and renamed, so a crash never leaves half an artefact; never overwritten, so any
//! score can be traced to the model version that made it.

use std::path::PathBuf;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tributary_warehouse::layout::DataDir;

use crate::ModelError;

/// One stored model, as `models list` shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Entry {
    /// Model kind (`churn`, `lifetime`, `demand`, `sales`, or a user's name).
    pub kind: String,
    /// Version within the kind, from 1.
    pub version: u64,
    /// When it was trained (RFC 3339).
    pub trained_at: String,
    /// The training report: metrics, features, window, baseline.
    pub report: serde_json::Value,
}

/// The file of one version.
fn path(dir: &DataDir, kind: &str, version: u64) -> PathBuf {
    dir.models().join(kind).join(format!("v{version:04}.json"))
}

fn artefact_error(path: &std::path::Path, message: impl ToString) -> ModelError {
    ModelError::Artefact {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

/// Versions stored for `kind`, ascending.
pub fn versions(dir: &DataDir, kind: &str) -> Vec<u64> {
    let mut versions: Vec<u64> = std::fs::read_dir(dir.models().join(kind))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix('v')?.strip_suffix(".json")?.parse().ok()
        })
        .collect();
    versions.sort_unstable();
    versions
}

/// Store a new version of `kind`; returns its number.
pub fn save(dir: &DataDir, kind: &str, report: &impl Serialize, model: &impl Serialize) -> Result<u64, ModelError> {
    let version = versions(dir, kind).last().map_or(1, |v| v + 1);
    let target = path(dir, kind, version);
    let folder = target.parent().expect("a file in a folder");
    std::fs::create_dir_all(folder).map_err(|e| artefact_error(folder, e))?;
    let document = serde_json::json!({
        "kind": kind,
        "version": version,
        "trained_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "report": report,
        "model": model,
    });
    let temporary = target.with_extension("json.tmp");
    let text = serde_json::to_vec(&document).map_err(|e| artefact_error(&target, e))?;
    std::fs::write(&temporary, text).map_err(|e| artefact_error(&temporary, e))?;
    std::fs::rename(&temporary, &target).map_err(|e| artefact_error(&target, e))?;
    Ok(version)
}

/// Load a version of `kind` (the latest when `version` is `None`): its entry and its model.
pub fn load<T: DeserializeOwned>(dir: &DataDir, kind: &str, version: Option<u64>) -> Result<(Entry, T), ModelError> {
    let version = match version.or_else(|| versions(dir, kind).last().copied()) {
        Some(v) => v,
        None => {
            return Err(artefact_error(
                &dir.models().join(kind),
                format!("no {kind} model is stored; train one first (tributary train {kind})"),
            ));
        }
    };
    let file = path(dir, kind, version);
    let text = std::fs::read(&file).map_err(|e| artefact_error(&file, e))?;
    let mut document: serde_json::Value = serde_json::from_slice(&text).map_err(|e| artefact_error(&file, e))?;
    let model = serde_json::from_value(document["model"].take()).map_err(|e| artefact_error(&file, e))?;
    let entry = serde_json::from_value(document).map_err(|e| artefact_error(&file, e))?;
    Ok((entry, model))
}

/// Every stored model, by kind and version.
pub fn list(dir: &DataDir) -> Result<Vec<Entry>, ModelError> {
    let mut kinds: Vec<String> = std::fs::read_dir(dir.models())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    kinds.sort();
    let mut entries = Vec::new();
    for kind in kinds {
        for version in versions(dir, &kind) {
            let (entry, _) = load::<serde_json::Value>(dir, &kind, Some(version))?;
            entries.push(entry);
        }
    }
    Ok(entries)
}
