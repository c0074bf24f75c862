//! `--format html`: one self-contained page a leader can read on screen and print — local
//! time, stage display names, charts as inline SVG (no script, no network), the tables, the
//! outcomes with the dissuasion rate (劝阻成功率), the days, the audit — in Chinese by default
//! or English (docs/contract.md §10.3). Every text from the input is escaped.

use std::fmt::Write;

use super::{Lang, Presentation};
use crate::domain::{Millis, Outcome};
use crate::report::model::{Audit, Day, Outcomes, Report, StageCounts};

/// The page's words in one language.
struct Text {
    lang: &'static str,
    title: &'static str,
    window: &'static str,
    until: &'static str,
    as_of: &'static str,
    jurisdiction_filter: &'static str,
    all: &'static str,
    policy: &'static str,
    generated: &'static str,
    summary: &'static str,
    alerts: &'static str,
    on_time_rate_of: &'static str,
    dissuasion_rate: &'static str,
    dissuasion_rate_def: &'static str,
    breached_total: &'static str,
    stages: &'static str,
    totals_caption: &'static str,
    by_jurisdiction: &'static str,
    jurisdiction: &'static str,
    stage: &'static str,
    on_time: &'static str,
    late: &'static str,
    unsatisfied: &'static str,
    on_time_rate: &'static str,
    breached: &'static str,
    level: &'static str,
    p50: &'static str,
    p90: &'static str,
    outcomes: &'static str,
    outcome: &'static str,
    count: &'static str,
    share: &'static str,
    by_day: &'static str,
    date: &'static str,
    day_chart: &'static str,
    audit: &'static str,
    not_audited: &'static str,
    audit_ok: &'static str,
    audit_problem: &'static str,
    expected: &'static str,
    published: &'static str,
    missed: &'static str,
    false_: &'static str,
    publish_delay: &'static str,
    more: &'static str,
    skipped: &'static str,
    skipped_none: &'static str,
    topic: &'static str,
    reason: &'static str,
    empty: &'static str,
    notes: &'static str,
    definitions: [&'static str; 5],
    none: &'static str,
}

const ZH: Text = Text {
    lang: "zh-CN",
    title: "预警指令处置时限合规报告",
    window: "统计区间",
    until: "至",
    as_of: "规则计算截至",
    jurisdiction_filter: "辖区",
    all: "全部",
    policy: "策略版本",
    generated: "生成时间",
    summary: "总览",
    alerts: "预警数",
    on_time_rate_of: "按时率",
    dissuasion_rate: "劝阻成功率",
    dissuasion_rate_def: "劝阻成功数 ÷ 已反馈结果数",
    breached_total: "触发超时升级",
    stages: "各环节按时情况",
    totals_caption: "全部辖区合计",
    by_jurisdiction: "分辖区明细",
    jurisdiction: "辖区",
    stage: "环节",
    on_time: "按时完成",
    late: "超时完成",
    unsatisfied: "未完成",
    on_time_rate: "按时率",
    breached: "超时升级",
    level: "级",
    p50: "用时中位数",
    p90: "90%用时",
    outcomes: "处置结果",
    outcome: "结果",
    count: "数量",
    share: "占比",
    by_day: "每日情况",
    date: "日期",
    day_chart: "每日预警数（柱）与各环节按时率（折线）",
    audit: "时限审计",
    not_audited: "本报告未做审计（运行时加 --audit 可核对实际发出的提醒与升级）。",
    audit_ok: "审计通过：规则要求的提醒与升级均已发出，且没有多发。",
    audit_problem: "审计发现问题：见下方漏发与误发清单。",
    expected: "规则要求发出",
    published: "实际已发出",
    missed: "漏发（应发未发）",
    false_: "误发（不应发而发）",
    publish_delay: "发布延迟（相对应发时间）",
    more: "另有 {n} 条，见 JSON 输出",
    skipped: "已跳过的无效消息",
    skipped_none: "区间内没有无效消息。",
    topic: "主题",
    reason: "原因",
    empty: "该区间内没有预警。",
    notes: "口径说明",
    definitions: [
        "按时完成：完成事件的发生时间不晚于该环节时限；超时完成：晚于时限；未完成：截至统计区间结束仍未完成，或预警被撤回。",
        "超时升级：时限到期后仍未完成、触发第 1 级升级的环节数；“n 级”为升级到第 n 级的环节数。",
        "用时：从预警下发到该环节完成；中位数与 90% 分位数按最近秩计算。",
        "劝阻成功率：以反馈结果结案的预警中，结果为“劝阻成功”的占比。",
        "按事件发生时间重放：预警按下发时间、处置按发生时间计入；审计按消息到达时间重放，与处理器的实际判断一致。",
    ],
    none: "—",
};

const EN: Text = Text {
    lang: "en",
    title: "Early-warning alert SLA compliance report",
    window: "Window",
    until: "to",
    as_of: "Rules applied up to",
    jurisdiction_filter: "Jurisdictions",
    all: "all",
    policy: "Policy version",
    generated: "Generated",
    summary: "Summary",
    alerts: "Alerts",
    on_time_rate_of: "on time",
    dissuasion_rate: "Dissuasion rate",
    dissuasion_rate_def: "dissuaded ÷ outcomes reported",
    breached_total: "Breached stages",
    stages: "Stages on time",
    totals_caption: "All jurisdictions",
    by_jurisdiction: "By jurisdiction",
    jurisdiction: "Jurisdiction",
    stage: "Stage",
    on_time: "On time",
    late: "Late",
    unsatisfied: "Not done",
    on_time_rate: "On-time rate",
    breached: "Breached",
    level: "Level",
    p50: "Median time",
    p90: "90th pct. time",
    outcomes: "Outcomes",
    outcome: "Outcome",
    count: "Count",
    share: "Share",
    by_day: "By day",
    date: "Date",
    day_chart: "Alerts per day (bars) and on-time rate per stage (lines)",
    audit: "SLA audit",
    not_audited: "Not audited (run with --audit to check the warnings and breaches published).",
    audit_ok: "Audit passed: every warning and breach the rules require was published, and nothing else.",
    audit_problem: "The audit found problems: see the missed and false lists below.",
    expected: "Required by the rules",
    published: "Published",
    missed: "Missed (due, never published)",
    false_: "False (published, not due)",
    publish_delay: "Publish delay (after due time)",
    more: "{n} more in the JSON output",
    skipped: "Invalid messages skipped",
    skipped_none: "No invalid message in the window.",
    topic: "Topic",
    reason: "Reason",
    empty: "No alerts in this window.",
    notes: "Definitions",
    definitions: [
        "On time: the event that completed the stage happened by its deadline; late: after it; not done: not completed by the end of the window, or the alert was withdrawn.",
        "Breached: stages still open when breach level 1 came due; \"Level n\": stages that reached level n.",
        "Time: from the alert's issue to the stage's completion; median and 90th percentile by nearest rank.",
        "Dissuasion rate: of the alerts closed with a feedback outcome, the share dissuaded.",
        "Replayed in event time: alerts at their issue time, dispositions when they happened; the audit replays in arrival order, as the processor decided.",
    ],
    none: "—",
};

impl Text {
    fn of(lang: Lang) -> &'static Text {
        match lang {
            Lang::ZhCn => &ZH,
            Lang::En => &EN,
        }
    }

    fn outcome(&self, o: Outcome) -> &'static str {
        match (self.lang, o) {
            ("en", Outcome::Dissuaded) => "Dissuaded",
            ("en", Outcome::Defrauded) => "Defrauded",
            ("en", Outcome::Unreachable) => "Unreachable",
            ("en", Outcome::FalsePositive) => "False positive",
            ("en", Outcome::Refused) => "Refused",
            (_, Outcome::Dissuaded) => "劝阻成功",
            (_, Outcome::Defrauded) => "已被骗",
            (_, Outcome::Unreachable) => "未联系上",
            (_, Outcome::FalsePositive) => "误报",
            (_, Outcome::Refused) => "拒绝配合",
        }
    }

    fn level(&self, n: u8) -> String {
        if self.lang == "en" {
            format!("{} {n}", self.level)
        } else {
            format!("{n}{}", self.level)
        }
    }

    /// A duration as people say it: `30分31秒`, `2小时03分` / `30m 31s`, `2h 03m`.
    fn duration(&self, seconds: Option<f64>) -> String {
        let Some(s) = seconds else {
            return self.none.to_owned();
        };
        let s = s.round().max(0.0) as u64;
        let (h, m, sec) = (s / 3600, s / 60 % 60, s % 60);
        match (self.lang, h, m) {
            ("en", 0, 0) => format!("{sec}s"),
            ("en", 0, _) => format!("{m}m {sec:02}s"),
            ("en", _, _) => format!("{h}h {m:02}m"),
            (_, 0, 0) => format!("{sec}秒"),
            (_, 0, _) => format!("{m}分{sec:02}秒"),
            (_, _, _) => format!("{h}小时{m:02}分"),
        }
    }
}

/// Series colours: the same stage has the same colour in every chart.
const PALETTE: [&str; 6] = [
    "#1565c0", "#8e24aa", "#00838f", "#ef6c00", "#5d4037", "#ad1457",
];
const GREEN: &str = "#2e7d32";
const AMBER: &str = "#f9a825";
const RED: &str = "#c62828";
const GREY: &str = "#cfd8dc";

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn percent(share: Option<f64>) -> String {
    share.map_or_else(|| "—".to_owned(), |s| format!("{:.1}%", s * 100.0))
}

/// Local time, to the minute, or to the second or millisecond when the time has them: a
/// window from 08:05:31 must not read as one from 08:05.
fn local(ms: Millis, how: &Presentation) -> String {
    let format = if ms % 1000 != 0 {
        "%Y-%m-%d %H:%M:%S%.3f"
    } else if ms % 60_000 != 0 {
        "%Y-%m-%d %H:%M:%S"
    } else {
        "%Y-%m-%d %H:%M"
    };
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(how.zone.clone()).strftime(format).to_string())
        .unwrap_or_default()
}

fn zone_name(ms: Millis, how: &Presentation) -> String {
    let offset = jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_zoned(how.zone.clone()).strftime("UTC%:z").to_string())
        .unwrap_or_default();
    match how.zone.iana_name() {
        Some(name) => format!("{name}, {offset}"),
        None => offset,
    }
}

pub(super) fn render(r: &Report, how: &Presentation) -> String {
    let t = Text::of(how.lang);
    let mut h = String::with_capacity(64 * 1024);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} {from} – {to}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        lang = t.lang,
        title = t.title,
        from = esc(&local(r.from, how)),
        to = esc(&local(r.to, how)),
    );
    header(&mut h, r, how, t);
    if r.alerts == 0 {
        let _ = writeln!(h, "<p class=\"empty\" id=\"empty\">{}</p>", t.empty);
    } else {
        summary(&mut h, r, how, t);
        stages(&mut h, r, how, t);
        jurisdictions(&mut h, r, how, t);
        outcomes(&mut h, &r.outcomes, t);
        days(&mut h, &r.days, &r.totals, how, t);
    }
    audit(&mut h, r.audit.as_ref(), t);
    skipped(&mut h, r, t);
    let _ = write!(h, "<footer>\n<h2>{}</h2>\n<ul>\n", t.notes);
    for d in t.definitions {
        let _ = writeln!(h, "<li>{}</li>", esc(d));
    }
    h.push_str("</ul>\n</footer>\n</body>\n</html>\n");
    h
}

fn header(h: &mut String, r: &Report, how: &Presentation, t: &Text) {
    let _ = write!(
        h,
        "<header>\n<h1>{title}</h1>\n<dl class=\"meta\">\n\
         <div><dt>{window}</dt><dd id=\"window\">{from} {until} {to}（{zone}）</dd></div>\n",
        title = t.title,
        window = t.window,
        from = esc(&local(r.from, how)),
        until = t.until,
        to = esc(&local(r.to, how)),
        zone = esc(&zone_name(r.from, how)),
    );
    if r.as_of < r.to {
        let _ = writeln!(
            h,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            t.as_of,
            esc(&local(r.as_of, how))
        );
    }
    let filter = r
        .jurisdiction_prefix
        .as_deref()
        .map_or_else(|| t.all.to_owned(), |p| format!("{}*", esc(p)));
    let _ = write!(
        h,
        "<div><dt>{jf}</dt><dd>{filter}</dd></div>\n\
         <div><dt>{policy}</dt><dd><code>{version}</code></dd></div>\n\
         <div><dt>{generated}</dt><dd>{at}</dd></div>\n</dl>\n</header>\n",
        jf = t.jurisdiction_filter,
        policy = t.policy,
        version = esc(&r.policy_version),
        generated = t.generated,
        at = esc(&local(how.generated_at, how)),
    );
}

fn summary(h: &mut String, r: &Report, how: &Presentation, t: &Text) {
    let _ = write!(
        h,
        "<section id=\"summary\">\n<h2>{}</h2>\n<div class=\"cards\">\n\
         <div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>\n",
        t.summary, t.alerts, r.alerts
    );
    for s in &r.totals {
        let _ = writeln!(
            h,
            "<div class=\"card\"><div class=\"k\">{} {}</div><div class=\"v\">{}</div></div>",
            esc(how.stage_label(&s.stage)),
            t.on_time_rate_of,
            percent(s.on_time_share())
        );
    }
    let breached: u64 = r.totals.iter().map(|s| s.breached).sum();
    let _ = write!(
        h,
        "<div class=\"card\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>\n\
         <div class=\"card\"><div class=\"k\">{}</div><div class=\"v\" id=\"dissuasion-rate\">{}</div></div>\n\
         </div>\n</section>\n",
        t.breached_total,
        breached,
        t.dissuasion_rate,
        percent(r.outcomes.dissuaded_share())
    );
}

/// The columns every stage table has, after its first ones.
fn counts_head(h: &mut String, t: &Text, levels: &[u8]) {
    let _ = write!(
        h,
        "<th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th>",
        t.alerts, t.on_time, t.late, t.unsatisfied, t.on_time_rate, t.breached
    );
    for l in levels {
        let _ = write!(h, "<th>{}</th>", t.level(*l));
    }
    let _ = write!(h, "<th>{}</th><th>{}</th>", t.p50, t.p90);
}

fn counts_cells(h: &mut String, c: &StageCounts, t: &Text, levels: &[u8]) {
    let _ = write!(
        h,
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
         <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>",
        c.alerts,
        c.on_time,
        c.late,
        c.unsatisfied,
        percent(c.on_time_share()),
        c.breached
    );
    for l in levels {
        let _ = write!(
            h,
            "<td class=\"n\">{}</td>",
            c.breaches_by_level.get(l).copied().unwrap_or(0)
        );
    }
    let _ = write!(
        h,
        "<td class=\"n\">{}</td><td class=\"n\">{}</td>",
        t.duration(c.p50_seconds),
        t.duration(c.p90_seconds)
    );
}

/// The breach levels any stage reached (the level columns): at least level 1.
fn levels_of<'a>(counts: impl Iterator<Item = &'a StageCounts>) -> Vec<u8> {
    let top = counts
        .filter_map(|c| c.breaches_by_level.keys().next_back().copied())
        .max()
        .unwrap_or(1)
        .max(1);
    (1..=top).collect()
}

fn stages(h: &mut String, r: &Report, how: &Presentation, t: &Text) {
    let _ = write!(h, "<section id=\"stages\">\n<h2>{}</h2>\n", t.stages);
    stage_bars(h, &r.totals, how, t);
    let levels = levels_of(r.totals.iter());
    let _ = write!(
        h,
        "<table id=\"totals\">\n<caption>{}</caption>\n<thead><tr><th>{}</th>",
        t.totals_caption, t.stage
    );
    counts_head(h, t, &levels);
    h.push_str("</tr></thead>\n<tbody>\n");
    for c in &r.totals {
        let _ = write!(
            h,
            "<tr><th scope=\"row\">{}</th>",
            esc(how.stage_label(&c.stage))
        );
        counts_cells(h, c, t, &levels);
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// One horizontal bar per stage, split into on time, late and not done.
fn stage_bars(h: &mut String, totals: &[StageCounts], how: &Presentation, t: &Text) {
    const W: f64 = 760.0;
    const LEFT: f64 = 110.0;
    const RIGHT: f64 = 70.0;
    const ROW: f64 = 34.0;
    const TOP: f64 = 30.0;
    let height = TOP + ROW * totals.len() as f64 + 6.0;
    let bar_w = W - LEFT - RIGHT;
    let _ = writeln!(
        h,
        "<figure><svg class=\"chart\" id=\"stage-chart\" viewBox=\"0 0 {W} {height}\" \
         role=\"img\" aria-label=\"{label}\" xmlns=\"http://www.w3.org/2000/svg\">",
        label = t.stages
    );
    legend(
        h,
        LEFT,
        16.0,
        &[(GREEN, t.on_time), (AMBER, t.late), (RED, t.unsatisfied)],
    );
    for (i, c) in totals.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"axis\">{}</text>",
            LEFT - 8.0,
            y + 17.0,
            esc(how.stage_label(&c.stage))
        );
        let total = c.alerts.max(1) as f64;
        let mut x = LEFT;
        for (n, colour) in [(c.on_time, GREEN), (c.late, AMBER), (c.unsatisfied, RED)] {
            let w = bar_w * n as f64 / total;
            if w <= 0.0 {
                continue;
            }
            let _ = writeln!(
                h,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"22\" fill=\"{colour}\"><title>{n}</title></rect>",
                y + 3.0
            );
            if w > 34.0 {
                let _ = writeln!(
                    h,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"on-bar\">{n}</text>",
                    x + w / 2.0,
                    y + 18.5
                );
            }
            x += w;
        }
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
            LEFT + bar_w + 6.0,
            y + 18.5,
            percent(c.on_time_share())
        );
    }
    h.push_str("</svg></figure>\n");
}

fn legend(h: &mut String, x0: f64, y: f64, items: &[(&str, &str)]) {
    let mut x = x0;
    for (colour, name) in items {
        let _ = writeln!(
            h,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\" class=\"legend\">{}</text>",
            y - 10.0,
            x + 16.0,
            esc(name)
        );
        // Wide enough for a CJK label of six characters or an English one of twelve.
        x += 28.0 + 13.0 * name.chars().count().min(12) as f64;
    }
}

fn jurisdictions(h: &mut String, r: &Report, how: &Presentation, t: &Text) {
    let levels = levels_of(r.rows.iter().map(|row| &row.counts));
    let _ = write!(
        h,
        "<section id=\"jurisdictions\">\n<h2>{}</h2>\n<table id=\"rows\">\n<thead><tr><th>{}</th><th>{}</th>",
        t.by_jurisdiction, t.jurisdiction, t.stage
    );
    counts_head(h, t, &levels);
    h.push_str("</tr></thead>\n<tbody>\n");
    let mut previous: Option<&str> = None;
    for row in &r.rows {
        let first = previous != Some(row.jurisdiction.as_str());
        previous = Some(&row.jurisdiction);
        let _ = write!(
            h,
            "<tr{}><td>{}</td><td>{}</td>",
            if first { " class=\"first\"" } else { "" },
            esc(&row.jurisdiction),
            esc(how.stage_label(&row.counts.stage))
        );
        counts_cells(h, &row.counts, t, &levels);
        h.push_str("</tr>\n");
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

fn outcomes(h: &mut String, o: &Outcomes, t: &Text) {
    let _ = write!(
        h,
        "<section id=\"outcomes\">\n<h2>{}</h2>\n<p class=\"rate\">{}: <strong>{}</strong> \
         <span class=\"def\">（{}）</span></p>\n",
        t.outcomes,
        t.dissuasion_rate,
        percent(o.dissuaded_share()),
        t.dissuasion_rate_def
    );
    // Narrow: it shares the width with the outcome table.
    const W: f64 = 460.0;
    const LEFT: f64 = 96.0;
    const ROW: f64 = 28.0;
    let max = Outcome::ALL
        .iter()
        .map(|k| o.count(*k))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let height = ROW * Outcome::ALL.len() as f64 + 8.0;
    let _ = writeln!(
        h,
        "<div class=\"pair\"><figure><svg class=\"chart\" id=\"outcome-chart\" viewBox=\"0 0 {W} {height}\" \
         role=\"img\" aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        t.outcomes
    );
    for (i, kind) in Outcome::ALL.iter().enumerate() {
        let y = 4.0 + ROW * i as f64;
        let n = o.count(*kind);
        let w = (W - LEFT - 50.0) * n as f64 / max;
        let colour = if *kind == Outcome::Dissuaded {
            GREEN
        } else {
            PALETTE[0]
        };
        let _ = writeln!(
            h,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"axis\">{}</text>\
             <rect x=\"{LEFT}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"18\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{n}</text>",
            LEFT - 8.0,
            y + 14.0,
            t.outcome(*kind),
            LEFT + w + 6.0,
            y + 14.0
        );
    }
    let _ = write!(
        h,
        "</svg></figure>\n<table id=\"outcome-table\">\n<thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        t.outcome, t.count, t.share
    );
    let total = o.total();
    for kind in Outcome::ALL {
        let n = o.count(kind);
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{n}</td><td class=\"n\">{}</td></tr>",
            t.outcome(kind),
            percent((total > 0).then(|| n as f64 / total as f64))
        );
    }
    h.push_str("</tbody>\n</table></div>\n</section>\n");
}

fn days(h: &mut String, days: &[Day], totals: &[StageCounts], how: &Presentation, t: &Text) {
    let stages: Vec<&str> = totals.iter().map(|s| s.stage.as_str()).collect();
    let _ = write!(h, "<section id=\"days\">\n<h2>{}</h2>\n", t.by_day);
    day_chart(h, days, &stages, how, t);
    let _ = write!(
        h,
        "<table id=\"day-table\">\n<thead><tr><th>{}</th><th>{}</th>",
        t.date, t.alerts
    );
    for s in &stages {
        let _ = write!(
            h,
            "<th>{} {}</th>",
            esc(how.stage_label(s)),
            t.on_time_rate_of
        );
    }
    let _ = write!(
        h,
        "<th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        t.breached, t.dissuasion_rate
    );
    for d in days {
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td>",
            esc(&d.date),
            d.alerts
        );
        for s in &stages {
            let share = d
                .stages
                .iter()
                .find(|c| c.stage == *s)
                .and_then(StageCounts::on_time_share);
            let _ = write!(h, "<td class=\"n\">{}</td>", percent(share));
        }
        let breached: u64 = d.stages.iter().map(|c| c.breached).sum();
        let _ = writeln!(
            h,
            "<td class=\"n\">{breached}</td><td class=\"n\">{}</td></tr>",
            percent(d.outcomes.dissuaded_share())
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

/// Alerts per day as bars (right scale), each stage's on-time rate as a line (left, 0–100%).
fn day_chart(h: &mut String, days: &[Day], stages: &[&str], how: &Presentation, t: &Text) {
    const W: f64 = 760.0;
    const H: f64 = 280.0;
    const LEFT: f64 = 48.0;
    const RIGHT: f64 = 48.0;
    const TOP: f64 = 34.0;
    const BOTTOM: f64 = 40.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let n = days.len().max(1);
    let step = plot_w / n as f64;
    let x_of = |i: usize| LEFT + step * (i as f64 + 0.5);
    let y_of = |share: f64| TOP + plot_h * (1.0 - share);
    let max_alerts = days.iter().map(|d| d.alerts).max().unwrap_or(0).max(1) as f64;
    let _ = writeln!(
        h,
        "<figure><svg class=\"chart\" id=\"day-chart\" viewBox=\"0 0 {W} {H}\" role=\"img\" \
         aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">",
        t.day_chart
    );
    let series: Vec<(&str, &str)> = stages
        .iter()
        .enumerate()
        .map(|(i, s)| (PALETTE[i % PALETTE.len()], how.stage_label(s)))
        .collect();
    let mut items = vec![(GREY, t.alerts)];
    items.extend(series.iter().copied());
    legend(h, LEFT, 16.0, &items);
    for pct in [0u32, 25, 50, 75, 100] {
        let y = y_of(f64::from(pct) / 100.0);
        let _ = writeln!(
            h,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\" class=\"grid\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"axis\">{pct}%</text>",
            LEFT + plot_w,
            LEFT - 6.0,
            y + 4.0
        );
    }
    // Label every day up to a month; beyond, as many as fit.
    let every = n.div_ceil(31).max(1);
    for (i, d) in days.iter().enumerate() {
        let bar_h = plot_h * d.alerts as f64 / max_alerts;
        let bw = (step * 0.6).min(40.0);
        let _ = writeln!(
            h,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{bar_h:.1}\" fill=\"{GREY}\"><title>{} {}</title></rect>",
            x_of(i) - bw / 2.0,
            TOP + plot_h - bar_h,
            esc(&d.date),
            d.alerts
        );
        if i % every == 0 {
            let label = if n > 7 { &d.date[5..] } else { &d.date[..] };
            let _ = writeln!(
                h,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"axis\">{}</text>",
                x_of(i),
                TOP + plot_h + 16.0,
                esc(label)
            );
        }
    }
    let _ = writeln!(
        h,
        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"axis\">{}</text>",
        LEFT + plot_w + 6.0,
        TOP + 4.0,
        max_alerts as u64
    );
    for (k, s) in stages.iter().enumerate() {
        let colour = series[k].0;
        let points: Vec<(f64, f64)> = days
            .iter()
            .enumerate()
            .filter_map(|(i, d)| {
                let share = d
                    .stages
                    .iter()
                    .find(|c| c.stage == *s)
                    .and_then(StageCounts::on_time_share)?;
                Some((x_of(i), y_of(share)))
            })
            .collect();
        if points.len() > 1 {
            let path: Vec<String> = points
                .iter()
                .map(|(x, y)| format!("{x:.1},{y:.1}"))
                .collect();
            let _ = writeln!(
                h,
                "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
                path.join(" ")
            );
        }
        for (x, y) in points {
            let _ = writeln!(
                h,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3.5\" fill=\"{colour}\"/>"
            );
        }
    }
    h.push_str("</svg></figure>\n");
}

/// Most ids listed per audit list; the JSON has them all.
const LISTED: usize = 200;

fn audit(h: &mut String, a: Option<&Audit>, t: &Text) {
    let _ = write!(h, "<section id=\"audit\">\n<h2>{}</h2>\n", t.audit);
    let Some(a) = a else {
        let _ = write!(h, "<p class=\"note\">{}</p>\n</section>\n", t.not_audited);
        return;
    };
    let (class, verdict) = if a.has_findings() {
        ("bad", t.audit_problem)
    } else {
        ("good", t.audit_ok)
    };
    let delay = |ms: Option<i64>| ms.map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms"));
    let _ = write!(
        h,
        "<p class=\"verdict {class}\">{verdict}</p>\n<table id=\"audit-table\">\n<tbody>\n\
         <tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr><th scope=\"row\">{}</th><td class=\"n\">{}</td></tr>\n\
         <tr><th scope=\"row\">{} p50 / p99</th><td class=\"n\">{} / {}</td></tr>\n\
         </tbody>\n</table>\n",
        t.expected,
        a.expected,
        t.published,
        a.published,
        t.missed,
        a.missed.len(),
        t.false_,
        a.false_.len(),
        t.publish_delay,
        delay(a.publish_delay_ms_p50),
        delay(a.publish_delay_ms_p99),
    );
    for (id, title, ids) in [
        ("missed", t.missed, &a.missed),
        ("false", t.false_, &a.false_),
    ] {
        if ids.is_empty() {
            continue;
        }
        let _ = write!(h, "<h3>{title}</h3>\n<ul class=\"ids\" id=\"{id}\">\n");
        for i in ids.iter().take(LISTED) {
            let _ = writeln!(h, "<li><code>{}</code></li>", esc(i));
        }
        h.push_str("</ul>\n");
        if ids.len() > LISTED {
            let _ = writeln!(
                h,
                "<p class=\"note\">{}</p>",
                t.more.replace("{n}", &(ids.len() - LISTED).to_string())
            );
        }
    }
    h.push_str("</section>\n");
}

fn skipped(h: &mut String, r: &Report, t: &Text) {
    let _ = write!(h, "<section id=\"skipped\">\n<h2>{}</h2>\n", t.skipped);
    if r.skipped.is_empty() {
        let _ = write!(h, "<p class=\"note\">{}</p>\n</section>\n", t.skipped_none);
        return;
    }
    let _ = write!(
        h,
        "<table id=\"skipped-table\">\n<thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead>\n<tbody>\n",
        t.topic, t.reason, t.count
    );
    for s in &r.skipped {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td><code>{}</code></td><td class=\"n\">{}</td></tr>",
            esc(&s.topic),
            esc(&s.reason),
            s.count
        );
    }
    h.push_str("</tbody>\n</table>\n</section>\n");
}

const CSS: &str = r#"
:root { --ink: #1f2933; --muted: #5f6b76; --line: #d9dee3; --head: #f3f5f7; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 28px 40px; color: var(--ink);
  font: 14px/1.55 "Noto Sans CJK SC", "Source Han Sans SC", "PingFang SC", "Microsoft YaHei",
  "WenQuanYi Micro Hei", system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
h1 { font-size: 24px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--ink); }
h3 { font-size: 15px; margin: 16px 0 6px; }
.meta { display: flex; flex-wrap: wrap; gap: 4px 28px; margin: 0; color: var(--muted); }
.meta div { display: flex; gap: 6px; } .meta dt { font-weight: 600; } .meta dd { margin: 0; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 120px; }
.card .k { color: var(--muted); font-size: 12px; } .card .v { font-size: 22px; font-weight: 700; }
table { border-collapse: collapse; width: 100%; margin: 8px 0; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); padding: 2px 0; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; }
thead th { background: var(--head); font-weight: 600; }
td.n { text-align: right; }
tr.first td { border-top: 2px solid #9aa5b1; }
figure { margin: 8px 0; }
svg.chart { width: 100%; height: auto; max-width: 760px; display: block; }
svg text { font-family: inherit; fill: var(--ink); }
svg .axis { font-size: 12px; } svg .legend { font-size: 12px; }
svg .on-bar { font-size: 11px; fill: #fff; font-weight: 600; }
svg .grid { stroke: var(--line); stroke-width: 1; }
.pair { display: grid; grid-template-columns: 3fr 2fr; gap: 16px; align-items: start; }
.rate { font-size: 16px; } .def, .note { color: var(--muted); }
.verdict { padding: 8px 12px; border-radius: 6px; font-weight: 600; }
.verdict.good { background: #e8f5e9; color: #1b5e20; }
.verdict.bad { background: #ffebee; color: #b71c1c; }
.ids { columns: 2; font-size: 12px; } .empty { font-size: 16px; margin: 32px 0; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
footer h2 { font-size: 14px; border-bottom: 1px solid var(--line); }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; } figure, .cards, .verdict { break-inside: avoid; }
  thead { display: table-header-group; } tr { break-inside: avoid; }
  .pair { grid-template-columns: 1fr; }
  #jurisdictions, #days { break-before: auto; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_the_input_is_escaped() {
        assert_eq!(
            esc("<b>\"x\" & 'y'</b>"),
            "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"
        );
    }

    #[test]
    fn a_time_is_shown_as_finely_as_it_was_given() {
        let how = Presentation {
            lang: Lang::ZhCn,
            zone: jiff::tz::TimeZone::get("Asia/Shanghai").unwrap(),
            labels: Default::default(),
            levels: 3,
            generated_at: 0,
        };
        // 2026-12-08T00:05:00Z is 08:05 in Shanghai.
        let minute = 1_796_688_300_000;
        assert_eq!(local(minute, &how), "2026-12-08 08:05");
        assert_eq!(local(minute + 31_000, &how), "2026-12-08 08:05:31");
        assert_eq!(local(minute + 31_250, &how), "2026-12-08 08:05:31.250");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(ZH.duration(Some(1830.4)), "30分30秒");
        assert_eq!(ZH.duration(Some(7380.0)), "2小时03分");
        assert_eq!(EN.duration(Some(45.0)), "45s");
        assert_eq!(EN.duration(None), "—");
    }
}
