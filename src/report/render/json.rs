//! `--format json`: the report as docs/contract.md §10.5 names its fields, pretty-printed.
//! Every list is sorted and no wall-clock time is printed, so the same window read twice gives
//! the same bytes.

use crate::report::model::Report;

pub(super) fn render(report: &Report) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(report).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    out
}
