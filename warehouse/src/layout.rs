//! Where things live under the data directory.
//!
//! ```text
//! <data-dir>/
//!   landing/            files waiting to be ingested (`tributary generate` writes here)
//!   tables/<layer>/<t>  one Delta Lake table per folder, grouped by layer (raw, staging, core, ...)
//!   models/             trained model artefacts
//!   spill/              scratch space for queries that spill to disk
//! ```
//!
//! Keeping every path in one place means the CLI, the servers and the tests never disagree about
//! where a table is.

use std::fmt;
use std::path::{Path, PathBuf};

/// The schema layers of the warehouse, each a folder of tables and a SQL schema of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// Files and pulls as received, plus lineage columns.
    Raw,
    /// Rows in the canonical shape, still keyed by source ids.
    Staging,
    /// Resolved entities and facts, one customer key across CRM and ERP.
    Core,
    /// The 7P and reporting marts.
    Marts,
    /// Scores and forecasts written by models.
    Ml,
    /// Ingest log, quarantine, job runs, query log.
    System,
}

impl Layer {
    /// Every layer, in the order data flows through them.
    pub const ALL: [Layer; 6] = [
        Layer::Raw,
        Layer::Staging,
        Layer::Core,
        Layer::Marts,
        Layer::Ml,
        Layer::System,
    ];

    /// The schema name, as used in SQL and on disk.
    pub fn name(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::Staging => "staging",
            Layer::Core => "core",
            Layer::Marts => "marts",
            Layer::Ml => "ml",
            Layer::System => "system",
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A data directory: the root under which Tributary keeps everything it owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// The directory used when neither `--data-dir` nor the configuration names one.
    pub const DEFAULT: &'static str = "./tributary-data";

    /// A data directory rooted at `root` (not created until something writes to it).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where source exports wait to be ingested.
    pub fn landing(&self) -> PathBuf {
        self.root.join("landing")
    }

    /// The folder holding all tables of one layer.
    pub fn layer(&self, layer: Layer) -> PathBuf {
        self.root.join("tables").join(layer.name())
    }

    /// The folder of one table.
    pub fn table(&self, layer: Layer, table: &str) -> PathBuf {
        self.layer(layer).join(table)
    }

    /// Where trained model artefacts are stored.
    pub fn models(&self) -> PathBuf {
        self.root.join("models")
    }

    /// Scratch space for queries that spill to disk.
    pub fn spill(&self) -> PathBuf {
        self.root.join("spill")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_grouped_by_layer() {
        let dir = DataDir::new("/d");
        assert_eq!(
            dir.table(Layer::Staging, "order_line"),
            Path::new("/d/tables/staging/order_line")
        );
        let names: Vec<_> = Layer::ALL.iter().map(|l| l.to_string()).collect();
        assert_eq!(names, ["raw", "staging", "core", "marts", "ml", "system"]);
    }
}
