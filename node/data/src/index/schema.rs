//! The benchmark database's own table, `content` (one row per root a node holds, written by
//! that node). The `results` table is declared by the layer that writes results.

use ipfsbench_sql::{ColumnType as T, Field, TableSchema};

/// One row per root a node holds.
pub const CONTENT: TableSchema = TableSchema {
    name: "content",
    fields: &[
        Field::required("node", T::Text, "the holder's peer id"),
        Field::required("cid", T::Text, "the root's CID"),
        Field::optional(
            "size",
            T::Int64,
            "file size (files), or the DAG's cumulative size",
        ),
        Field::required(
            "unixfs_type",
            T::Text,
            "`file`, `directory`, `raw` or `other`",
        ),
        Field::required(
            "pin",
            T::Text,
            "`recursive`, `direct` or `kept` (the node's own)",
        ),
        Field::optional("name", T::Text, "the cluster pin's name"),
        Field::optional(
            "tags",
            T::Text,
            "the cluster pin's metadata, `k=v` comma-separated",
        ),
        Field::optional("added_at", T::Timestamp, "when this node first listed it"),
        Field::optional(
            "last_accessed_at",
            T::Timestamp,
            "when it was last read here",
        ),
        Field::optional("access_count", T::Int64, "reads of it here"),
        Field::required("tier", T::Text, "where it is kept: `disk` or `cache`"),
        Field::required("listed_at", T::Timestamp, "when this row was written"),
    ],
};

#[cfg(test)]
mod readme {
    use super::CONTENT;

    /// The README documents the schema exactly as the code defines it.
    #[test]
    fn the_readme_documents_the_content_schema() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .expect("README.md");
        let table = CONTENT.markdown();
        assert!(
            readme.contains(&table),
            "README.md lacks the content schema as the code defines it:\n{table}"
        );
    }
}
