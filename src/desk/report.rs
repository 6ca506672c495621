//! `wschat desk report` and `wschat desk export`: what the desk did, read
//! from the log's `desk_…` records (docs/customer-service.md, "Reports").
//!
//! Both read the data directory's segments line by line without opening
//! the store, so they run beside a running server (a line being written
//! at that moment is skipped).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::Value;

/// What the log says of one conversation.
#[derive(Debug, Default, Clone)]
pub struct Facts {
    /// Its id.
    pub id: u64,
    /// The visitor's name when it was opened.
    pub visitor: String,
    /// The visitor's `sub`, when signed in.
    pub sub: Option<String>,
    /// When it was opened, epoch ms.
    pub opened: u64,
    /// The agent it is (or was last) assigned to.
    pub agent: Option<String>,
    /// When an agent first wrote in it, epoch ms.
    pub first_response: Option<u64>,
    /// When it was resolved, epoch ms.
    pub resolved: Option<u64>,
    /// Who ended it: `agent`, `visitor`, `abandoned`, or `api`.
    pub by: Option<String>,
    /// The visitor's rating, 1-5.
    pub rating: Option<u64>,
    /// The comment given with the rating.
    pub comment: Option<String>,
    /// The transcript (the `desk_message` records as stored); only kept
    /// when exporting.
    pub messages: Vec<Value>,
}

/// Every conversation of the log in `dir` opened at or after `since`
/// (epoch ms), by id; `transcripts`: keep their messages too.
pub fn read(dir: &Path, since: u64, transcripts: bool) -> std::io::Result<BTreeMap<u64, Facts>> {
    let mut all: BTreeMap<u64, Facts> = BTreeMap::new();
    crate::store::scan_dir(dir, &["\"type\":\"desk_"], |v| {
        add(&mut all, v, since, transcripts)
    })?;
    Ok(all)
}

/// As [`read`], from the desk's records in the Redis of a cluster
/// (`wschat:desk:log`, docs/cluster.md "The desk"), read in pages of
/// [`DESK_RANGE`](crate::cluster::desk::DESK_RANGE), each waiting at most
/// `timeout`.
pub fn read_redis(
    url: &str,
    since: u64,
    transcripts: bool,
    timeout: std::time::Duration,
) -> Result<BTreeMap<u64, Facts>, String> {
    let cluster = crate::cluster::accounts::connect(url, timeout)?;
    let mut all: BTreeMap<u64, Facts> = BTreeMap::new();
    let mut after: Option<String> = None;
    loop {
        let cmd = cluster.desk_after_cmd(after.as_deref());
        let page = cluster
            .client()
            .call(cmd, timeout)
            .and_then(crate::cluster::Cluster::parse_desk_range)
            .map_err(|e| format!("reading the desk's records from Redis: {e}"))?;
        for record in &page.records {
            if let Ok(v) = serde_json::from_str::<Value>(record) {
                add(&mut all, &v, since, transcripts);
            }
        }
        match page.more_after {
            Some(last) => after = Some(last),
            None => return Ok(all),
        }
    }
}

/// Take one desk record `v` into the conversations `all`.
fn add(all: &mut BTreeMap<u64, Facts>, v: &Value, since: u64, transcripts: bool) {
    let Some(cid) = v["conversation"].as_u64() else {
        return;
    };
    let time = v["time"].as_u64().unwrap_or(0);
    let text = |k: &str| v[k].as_str().map(str::to_string);
    if v["type"] == "desk_opened" {
        if time >= since {
            all.insert(
                cid,
                Facts {
                    id: cid,
                    visitor: text("visitor").unwrap_or_default(),
                    sub: text("sub"),
                    opened: time,
                    ..Facts::default()
                },
            );
        }
        return;
    }
    let Some(f) = all.get_mut(&cid) else {
        return;
    };
    match v["type"].as_str().unwrap_or("") {
        "desk_assigned" => f.agent = text("agent"),
        "desk_queued" => f.agent = None,
        "desk_message" => {
            if v["from"] == "agent" && f.first_response.is_none() {
                f.first_response = Some(time);
            }
            if transcripts {
                f.messages.push(v.clone());
            }
        }
        "desk_resolved" => {
            f.resolved = Some(time);
            f.by = text("by").or_else(|| {
                Some(
                    if v["agent"].is_string() {
                        "agent"
                    } else {
                        "api"
                    }
                    .into(),
                )
            });
            if let Some(agent) = text("agent") {
                f.agent = Some(agent);
            }
        }
        "desk_rated" => {
            f.rating = v["rating"].as_u64();
            f.comment = text("comment");
        }
        _ => {}
    }
}

/// The median and 90th percentile of some durations, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spread {
    /// The middle value (nearest rank).
    pub median: Option<f64>,
    /// The value 90% are at or below (nearest rank).
    pub p90: Option<f64>,
}

impl Spread {
    /// The spread of `ms` (milliseconds), by the nearest-rank method.
    pub fn of(mut ms: Vec<u64>) -> Spread {
        ms.sort_unstable();
        let rank = |p: f64| {
            if ms.is_empty() {
                return None;
            }
            let i = ((p * ms.len() as f64).ceil() as usize).clamp(1, ms.len()) - 1;
            Some(ms[i] as f64 / 1000.0)
        };
        Spread {
            median: rank(0.5),
            p90: rank(0.9),
        }
    }
}

/// The ratings of some conversations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ratings {
    /// How many were rated.
    pub count: usize,
    /// Their mean, to two decimals.
    pub average: Option<f64>,
    /// How many of each: `"1"` to `"5"`.
    pub stars: BTreeMap<String, usize>,
}

/// One line of the report: an agent's conversations, or all of them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The agent; `None` for the line of all conversations.
    pub agent: Option<String>,
    /// Conversations (the agent's: those it had last).
    pub conversations: usize,
    /// Of those, resolved.
    pub resolved: usize,
    /// Of those, abandoned in the queue.
    pub abandoned: usize,
    /// From opening to an agent's first message.
    pub first_response: Spread,
    /// From opening to being resolved.
    pub resolution: Spread,
    /// The visitors' ratings.
    pub ratings: Ratings,
}

impl Line {
    fn of<'a>(agent: Option<String>, convs: impl Iterator<Item = &'a Facts>) -> Line {
        let convs: Vec<&Facts> = convs.collect();
        let rated: Vec<u64> = convs.iter().filter_map(|c| c.rating).collect();
        let stars = (1..=5)
            .map(|s| (s.to_string(), rated.iter().filter(|&&r| r == s).count()))
            .collect();
        let average = (!rated.is_empty()).then(|| {
            let mean = rated.iter().sum::<u64>() as f64 / rated.len() as f64;
            (mean * 100.0).round() / 100.0
        });
        Line {
            agent,
            conversations: convs.len(),
            resolved: convs
                .iter()
                .filter(|c| c.resolved.is_some() && c.by.as_deref() != Some("abandoned"))
                .count(),
            abandoned: convs
                .iter()
                .filter(|c| c.by.as_deref() == Some("abandoned"))
                .count(),
            first_response: Spread::of(
                convs
                    .iter()
                    .filter_map(|c| Some(c.first_response?.saturating_sub(c.opened)))
                    .collect(),
            ),
            resolution: Spread::of(
                convs
                    .iter()
                    .filter(|c| c.by.as_deref() != Some("abandoned"))
                    .filter_map(|c| Some(c.resolved?.saturating_sub(c.opened)))
                    .collect(),
            ),
            ratings: Ratings {
                count: rated.len(),
                average,
                stars,
            },
        }
    }
}

/// The report: one line per agent (by name), then the line of all.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Conversations opened at or after this time (epoch ms) were counted.
    pub since: u64,
    /// One line per agent who had a conversation.
    pub agents: Vec<Line>,
    /// Every conversation, with an agent or not.
    pub overall: Line,
}

/// The report of `convs`, counted from `since`.
pub fn report(convs: &BTreeMap<u64, Facts>, since: u64) -> Report {
    let mut names: Vec<&String> = convs.values().filter_map(|c| c.agent.as_ref()).collect();
    names.sort();
    names.dedup();
    let agents = names
        .into_iter()
        .map(|name| {
            Line::of(
                Some(name.clone()),
                convs.values().filter(|c| c.agent.as_ref() == Some(name)),
            )
        })
        .collect();
    Report {
        since,
        agents,
        overall: Line::of(None, convs.values()),
    }
}

const COLUMNS: [&str; 15] = [
    "agent",
    "conversations",
    "resolved",
    "abandoned",
    "first_response_median_s",
    "first_response_p90_s",
    "resolution_median_s",
    "resolution_p90_s",
    "ratings",
    "rating_average",
    "stars_1",
    "stars_2",
    "stars_3",
    "stars_4",
    "stars_5",
];

/// The cells of a line, in [`COLUMNS`] order.
fn cells(line: &Line) -> Vec<String> {
    let n = |v: Option<f64>| v.map_or_else(String::new, |v| format!("{v}"));
    let mut out = vec![
        line.agent.clone().unwrap_or_else(|| "(all)".into()),
        line.conversations.to_string(),
        line.resolved.to_string(),
        line.abandoned.to_string(),
        n(line.first_response.median),
        n(line.first_response.p90),
        n(line.resolution.median),
        n(line.resolution.p90),
        line.ratings.count.to_string(),
        n(line.ratings.average),
    ];
    out.extend(line.ratings.stars.values().map(usize::to_string));
    out
}

/// The report as `format`: `table`, `csv` or `json`.
pub fn render(report: &Report, format: &str) -> String {
    let mut rows = vec![COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>()];
    rows.extend(report.agents.iter().map(cells));
    rows.push(cells(&report.overall));
    let mut out = String::new();
    match format {
        "json" => {
            out = serde_json::to_string_pretty(report).unwrap_or_default();
            out.push('\n');
        }
        "csv" => {
            for row in rows {
                let quoted: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
                let _ = writeln!(out, "{}", quoted.join(","));
            }
        }
        _ => {
            let widths: Vec<usize> = (0..rows[0].len())
                .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
                .collect();
            for row in rows {
                let padded: Vec<String> = row
                    .iter()
                    .zip(&widths)
                    .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                    .collect();
                let _ = writeln!(out, "{}", padded.join("  ").trim_end());
            }
        }
    }
    out
}

/// A CSV cell (RFC 4180 §2: quoted when it holds a comma, quote or line
/// break, with quotes doubled).
fn csv_cell(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// One line of `wschat desk export`.
#[derive(Serialize)]
struct Exported<'a> {
    conversation: u64,
    visitor: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    opened: u64,
    agent: Option<&'a str>,
    resolved: Option<u64>,
    by: Option<&'a str>,
    rating: Option<u64>,
    comment: Option<&'a str>,
    messages: Vec<ExportedMessage<'a>>,
}

/// A message of an exported transcript.
#[derive(Serialize)]
struct ExportedMessage<'a> {
    id: u64,
    from: &'a str,
    name: &'a str,
    text: &'a str,
    time: u64,
}

/// The conversations as JSON lines, one conversation (with its
/// transcript) a line, oldest first.
pub fn export(convs: &BTreeMap<u64, Facts>) -> String {
    let mut out = String::new();
    for c in convs.values() {
        let messages = c
            .messages
            .iter()
            .map(|m| ExportedMessage {
                id: m["id"].as_u64().unwrap_or(0),
                from: m["from"].as_str().unwrap_or(""),
                name: m["name"].as_str().unwrap_or(""),
                text: m["text"].as_str().unwrap_or(""),
                time: m["time"].as_u64().unwrap_or(0),
            })
            .collect();
        let line = Exported {
            conversation: c.id,
            visitor: &c.visitor,
            sub: c.sub.as_deref(),
            opened: c.opened,
            agent: c.agent.as_deref(),
            resolved: c.resolved,
            by: c.by.as_deref(),
            rating: c.rating,
            comment: c.comment.as_deref(),
            messages,
        };
        if let Ok(json) = serde_json::to_string(&line) {
            out.push_str(&json);
            out.push('\n');
        }
    }
    out
}

/// `DATE` of `--since`: `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM` in UTC, or
/// epoch milliseconds; as epoch ms.
///
/// ```
/// use wschat::desk::report::parse_since;
/// assert_eq!(parse_since("1970-01-02"), Ok(86_400_000));
/// assert_eq!(parse_since("2026-01-01T08:30"), Ok(1_767_256_200_000));
/// assert!(parse_since("2026-13-01").is_err());
/// ```
pub fn parse_since(text: &str) -> Result<u64, String> {
    let bad = || format!("--since {text:?}: a date is YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)");
    let text = text.trim();
    if text.len() > 10 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().map_err(|_| bad());
    }
    let (date, time) = text.split_once(['T', ' ']).unwrap_or((text, "00:00"));
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let d: Vec<&str> = date.split('-').collect();
    let t: Vec<&str> = time.split(':').collect();
    let ([y, m, day], [hh, mm]) = (d.as_slice(), t.as_slice()) else {
        return Err(bad());
    };
    let (y, m, day, hh, mm) = (num(y)?, num(m)?, num(day)?, num(hh)?, num(mm)?);
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&hh)
        || !(0..60).contains(&mm)
    {
        return Err(bad());
    }
    let days = days_from_civil(y, m, day);
    Ok(((days * 86_400 + hh * 3600 + mm * 60) * 1000) as u64)
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (the
/// usual era arithmetic: 400-year eras of 146,097 days, years starting
/// in March so that the leap day comes last).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const USAGE: &str = "Usage:
  wschat desk report [--since DATE] [--format table|csv|json] [--data-dir DIR | --redis URL]
      per agent and overall: conversations, first-response and resolution
      times (median, p90, seconds), ratings
  wschat desk export [--since DATE] [--data-dir DIR | --redis URL]
      every conversation with its transcript, as JSON lines
DATE is YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC): conversations opened then or later.
The data directory defaults to $WSCHAT_DATA_DIR, else ./wschat-data.
With --redis URL (or $WSCHAT_REDIS), the desk of the cluster of every node
on that Redis (`wschat serve --redis URL`), whose records are kept there.
";

/// `wschat desk …`.
pub fn main(args: &[String]) -> ExitCode {
    let (dir, words) = match crate::store::admin_args("desk", args, USAGE) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    let (words, redis) = match super::agents::redis_option(&words) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("wschat desk: {e}");
            return ExitCode::from(2);
        }
    };
    let (mut since, mut format, mut rest) = (0, "table".to_string(), Vec::new());
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v)),
            _ => (w, None),
        };
        if flag != "--since" && flag != "--format" {
            rest.push(w);
            continue;
        }
        let Some(value) = inline.or_else(|| iter.next()) else {
            eprintln!("wschat desk: {flag} needs a value");
            return ExitCode::from(2);
        };
        if flag == "--since" {
            match parse_since(value) {
                Ok(ms) => since = ms,
                Err(e) => {
                    eprintln!("wschat desk: {e}");
                    return ExitCode::from(2);
                }
            }
        } else if matches!(value, "table" | "csv" | "json") {
            format = value.to_string();
        } else {
            eprintln!("wschat desk: --format is table, csv or json");
            return ExitCode::from(2);
        }
    }
    let export_them = match rest.as_slice() {
        ["report"] => false,
        ["export"] => true,
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let convs = match &redis {
        Some(url) => read_redis(url, since, export_them, super::agents::REDIS_TIMEOUT),
        None => read(&dir, since, export_them).map_err(|e| e.to_string()),
    };
    let convs = match convs {
        Ok(convs) => convs,
        Err(e) => {
            eprintln!("wschat desk: {e}");
            return ExitCode::from(1);
        }
    };
    if export_them {
        print!("{}", export(&convs));
    } else {
        print!("{}", render(&report(&convs, since), &format));
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_spread() {
        let s = Spread::of(vec![5000, 1000, 3000, 2000, 4000]);
        assert_eq!((s.median, s.p90), (Some(3.0), Some(5.0)));
        let none = Spread::of(Vec::new());
        assert_eq!((none.median, none.p90), (None, None));
        let ten = Spread::of((1..=10).map(|s| s * 1000).collect());
        assert_eq!((ten.median, ten.p90), (Some(5.0), Some(9.0)));
    }

    #[test]
    fn csv_cells_are_quoted_when_needed() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
