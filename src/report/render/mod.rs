//! The report's three forms: JSON for machines (docs/contract.md §10.5), CSV for spreadsheets,
//! HTML for people. Pure: a [`Report`] and how to present it in, bytes out.

mod csv;
mod html;
mod json;

use jiff::tz::TimeZone;
use std::collections::BTreeMap;

use super::model::Report;
use crate::config::StageLabel;
use crate::domain::Millis;

/// The output formats of `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Json,
    Csv,
    Html,
}

impl Format {
    /// The format a file name asks for by its extension, if any.
    pub fn of_path(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "csv" => Some(Format::Csv),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

/// The language of the HTML report (docs/contract.md §10.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[value(name = "zh-CN")]
    ZhCn,
    #[value(name = "en")]
    En,
}

impl Lang {
    /// `[display].language`; anything but `en` is Chinese, the default.
    pub fn from_config(language: &str) -> Lang {
        if language == "en" {
            Lang::En
        } else {
            Lang::ZhCn
        }
    }
}

/// What people read beside the figures: language, local time, stage names.
#[derive(Debug, Clone)]
pub struct Presentation {
    pub lang: Lang,
    pub zone: TimeZone,
    /// Display names per stage; a stage without one shows its name.
    pub labels: BTreeMap<String, StageLabel>,
    /// Breach levels of the longest ladder: the CSV's `level_<n>` columns.
    pub levels: u8,
    /// When the report was made (shown in the HTML only: JSON and CSV stay reproducible).
    pub generated_at: Millis,
}

impl Presentation {
    /// A stage's display name in the report's language.
    pub fn stage_label<'a>(&'a self, stage: &'a str) -> &'a str {
        match (self.labels.get(stage), self.lang) {
            (Some(l), Lang::ZhCn) => &l.zh,
            (Some(l), Lang::En) => &l.en,
            (None, _) => stage,
        }
    }
}

/// The report in `format`.
pub fn render(format: Format, report: &Report, how: &Presentation) -> Vec<u8> {
    match format {
        Format::Json => json::render(report),
        Format::Csv => csv::render(report, how).into_bytes(),
        Format::Html => html::render(report, how).into_bytes(),
    }
}
