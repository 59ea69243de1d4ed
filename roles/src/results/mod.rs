//! What a benchmarker asks of the cluster's `results`: listings, comparisons by hardware,
//! worker or parameters (median, p10/p90, count), regressions of a new result against the
//! history of the same kind, parameters and hardware, and reports with charts rendered here
//! (SVG, offline). Everything is SQL over the benchmark database's views.

pub mod chart;
mod query;
pub mod record;
pub mod report;
pub mod schema;
pub mod stats;
pub mod tables;

pub use query::{
    compare, figure, list, primary_figure, regressions, GroupBy, Regression, HISTORY, MIN_HISTORY,
};
