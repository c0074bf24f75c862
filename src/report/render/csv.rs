//! `--format csv`: one line per row (jurisdiction and stage), UTF-8 with a byte-order mark so
//! spreadsheet programs read Chinese text as such, CRLF line ends (RFC 4180). The columns are
//! the JSON row's, then the stage's display name in the report's language (§10.3), last so
//! that the columns before it stay where a script expects them.

use std::fmt::Write;

use super::Presentation;
use crate::report::model::Report;

/// The UTF-8 byte-order mark.
const BOM: &str = "\u{feff}";

pub(super) fn render(report: &Report, how: &Presentation) -> String {
    let levels = how.levels;
    let top_level = report
        .rows
        .iter()
        .filter_map(|r| r.counts.breaches_by_level.keys().next_back().copied())
        .max()
        .unwrap_or(0)
        .max(levels);
    let mut out = String::from(BOM);
    let mut header = vec![
        "jurisdiction",
        "stage",
        "alerts",
        "on_time",
        "late",
        "unsatisfied",
        "breached",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect::<Vec<_>>();
    header.extend((1..=top_level).map(|l| format!("level_{l}")));
    header.extend(["p50_seconds", "p90_seconds", "stage_label"].map(str::to_owned));
    line(&mut out, &header);
    for row in &report.rows {
        let c = &row.counts;
        let mut cells = vec![
            row.jurisdiction.clone(),
            c.stage.clone(),
            c.alerts.to_string(),
            c.on_time.to_string(),
            c.late.to_string(),
            c.unsatisfied.to_string(),
            c.breached.to_string(),
        ];
        cells.extend((1..=top_level).map(|l| {
            c.breaches_by_level
                .get(&l)
                .copied()
                .unwrap_or(0)
                .to_string()
        }));
        for p in [c.p50_seconds, c.p90_seconds] {
            cells.push(p.map(|s| s.to_string()).unwrap_or_default());
        }
        cells.push(how.stage_label(&c.stage).to_owned());
        line(&mut out, &cells);
    }
    out
}

fn line(out: &mut String, cells: &[String]) {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", field(cell));
    }
    out.push_str("\r\n");
}

/// A cell, quoted when it must be (RFC 4180). Text a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@` first) gets a leading `'`: jurisdictions come from another system.
fn field(cell: &str) -> String {
    let formula =
        cell.starts_with(['=', '+', '-', '@', '\t', '\r']) && cell.parse::<f64>().is_err();
    let cell = if formula {
        format!("'{cell}")
    } else {
        cell.to_owned()
    };
    if cell.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell
    }
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        assert_eq!(field("620102-GWM"), "620102-GWM");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(field("-12.5"), "-12.5");
    }
}
