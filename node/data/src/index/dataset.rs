//! Datasets: tables stored as Parquet content.

/// A dataset file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatasetFormat {
    /// CSV with a header.
    Csv,
    /// Parquet.
    Parquet,
}

/// A stored dataset.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Dataset {
    /// The Parquet file's CID.
    pub cid: String,
    /// Its rows.
    pub rows: u64,
    /// Its bytes.
    pub bytes: u64,
    /// Its columns and their types.
    pub columns: Vec<(String, String)>,
}
