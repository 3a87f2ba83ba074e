//! A landing folder: every file in it (recursively) is offered to the pipelines whose `files` glob
//! matches its path, in pipeline order. Folders and files whose names start with `_` or `.` are not
//! data (`_truth/` of the sample company, `_rejected/`), nor is `manifest.json` at the top.
//!
//! Files stay where they are after ingest: the batch id (pipeline + content hash) makes a second
//! run a no-op, and keeping the files lets a user re-run or audit. A file that cannot be read at all
//! is moved to `_rejected/` beside a `.reason.txt` that says why.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::source::file::SourceError;

/// A file found in the landing folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedFile {
    /// Absolute or as-given path.
    pub path: PathBuf,
    /// `/`-separated path relative to the folder, which pipelines' globs match.
    pub relative: String,
}

/// Where unreadable files are set aside, inside the landing folder.
pub const REJECTED_DIR: &str = "_rejected";

/// Every data file under `dir`, sorted by relative path.
pub fn scan(dir: &Path) -> Result<Vec<LandedFile>, SourceError> {
    let mut found = Vec::new();
    walk(dir, dir, &mut found)?;
    found.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(found)
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<LandedFile>) -> Result<(), SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|e| SourceError::Read {
        path: dir.to_path_buf(),
        message: e.to_string(),
    })?;
    for entry in entries {
        let entry = entry.map_err(|e| SourceError::Read {
            path: dir.to_path_buf(),
            message: e.to_string(),
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('_') || name.starts_with('.') || name.ends_with(".partial") {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, found)?;
        } else if !(dir == root && name == "manifest.json") {
            let relative = path
                .strip_prefix(root)
                .expect("walked from root")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            found.push(LandedFile { path, relative });
        }
    }
    Ok(())
}

/// SHA-256 of a file's bytes, hex.
pub fn content_hash(path: &Path) -> Result<String, SourceError> {
    let mut file = std::fs::File::open(path).map_err(|e| SourceError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| SourceError::Read {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// SHA-256 of bytes in memory, hex.
pub fn bytes_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from_digit(u32::from(b >> 4), 16).expect("nibble"));
        s.push(char::from_digit(u32::from(b & 15), 16).expect("nibble"));
    }
    s
}

/// Move an unreadable file to `<dir>/_rejected/<relative>` and write why beside it.
/// Returns where it went.
pub fn set_aside(dir: &Path, file: &LandedFile, reason: &str) -> std::io::Result<PathBuf> {
    let target = dir.join(REJECTED_DIR).join(&file.relative);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::rename(&file.path, &target)?;
    let mut note = target.clone().into_os_string();
    note.push(".reason.txt");
    std::fs::write(&note, format!("{reason}\n"))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_skips_truth_manifest_and_partials() {
        let dir = tempfile::tempdir().unwrap();
        for f in [
            "crm/a.csv",
            "erp/b.csv",
            "_truth/t.csv",
            "manifest.json",
            "erp/c.csv.partial",
            ".hidden",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "x\n").unwrap();
        }
        let names: Vec<_> = scan(dir.path()).unwrap().into_iter().map(|f| f.relative).collect();
        assert_eq!(names, ["crm/a.csv", "erp/b.csv"]);
        assert_eq!(
            bytes_hash(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
