//! `spate group`: list, describe and delete consumer groups and reset their offsets over the
//! Kafka protocol, like `kafka-consumer-groups`; works against Spate and any Kafka cluster.
//!
//! `describe` prints one row per partition with the committed offset, the log end offset (the
//! high watermark), the lag between them and the member the partition is assigned to.
//! `reset-offsets` computes new offsets (clamped to each partition's earliest and latest
//! offsets), prints the plan, and commits it only with `--execute` and only while the group
//! has no members. The flag parsers (topic-partition specs, RFC 3339 times, durations) are
//! pure functions tested here; the network calls are `spate_client`'s.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde_json::json;
use spate_client::error::code;
use spate_client::{Client, GroupDescription, GroupMember, MemberAssignment, OffsetSpec};

use super::client_args::{ClientArgs, runtime};

/// Arguments of `spate group`.
#[derive(Debug, clap::Args)]
pub struct GroupArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum GroupCommand {
    /// List consumer groups with their state and type.
    List(ListArgs),
    /// Show a group's members, and committed offsets and lag per partition.
    Describe(DescribeArgs),
    /// Delete groups that have no active members (and their committed offsets).
    Delete(DeleteArgs),
    /// Move a group's committed offsets; dry run unless --execute.
    ResetOffsets(ResetArgs),
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    /// For people.
    Text,
    /// One JSON document.
    Json,
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only groups in this state, e.g. Stable or Empty (repeatable, case-insensitive).
    #[arg(long = "state", value_name = "STATE", value_parser = parse_state)]
    states: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct DescribeArgs {
    /// Group id.
    group: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

#[derive(Debug, clap::Args)]
struct DeleteArgs {
    /// Group ids.
    #[arg(required = true)]
    groups: Vec<String>,
}

#[derive(Debug, clap::Args)]
struct ResetArgs {
    /// Group id.
    group: String,
    /// A topic, or some of its partitions as TOPIC:P[,P...] (repeatable).
    #[arg(
        long = "topic",
        value_name = "TOPIC[:P[,P...]]",
        value_parser = parse_topic_spec,
        required_unless_present = "all_topics"
    )]
    topics: Vec<TopicSpec>,
    /// Every partition the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    all_topics: bool,
    #[command(flatten)]
    target: ResetTarget,
    /// Only print the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Where to move the offsets: exactly one of these.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
struct ResetTarget {
    /// To each partition's earliest offset.
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (clamped to the partition's range).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<i64>,
    /// To the first record at or after this time, RFC 3339, e.g. 2024-05-01T12:00:00Z.
    #[arg(long, value_name = "TIME", value_parser = parse_datetime_ms)]
    to_datetime: Option<i64>,
    /// By N records from the committed offset (negative moves back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// To the first record within this long ago: ISO 8601 (PT10M, P1DT2H) or 10m, 1h30m, 2d.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
    by_duration: Option<i64>,
}

/// A resolved `--to-*` / `--shift-by` / `--by-duration` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetSpec {
    Earliest,
    Latest,
    Offset(i64),
    /// Ms since the epoch.
    Timestamp(i64),
    ShiftBy(i64),
}

impl ResetTarget {
    fn spec(&self, now_ms: i64) -> anyhow::Result<ResetSpec> {
        Ok(if self.to_earliest {
            ResetSpec::Earliest
        } else if self.to_latest {
            ResetSpec::Latest
        } else if let Some(offset) = self.to_offset {
            ResetSpec::Offset(offset)
        } else if let Some(ms) = self.to_datetime {
            ResetSpec::Timestamp(ms)
        } else if let Some(n) = self.shift_by {
            ResetSpec::ShiftBy(n)
        } else if let Some(ms) = self.by_duration {
            ResetSpec::Timestamp(now_ms.saturating_sub(ms).max(0))
        } else {
            // clap's group makes one of them required.
            bail!(
                "pass one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by, --by-duration"
            )
        })
    }
}

/// `TOPIC` (every partition) or `TOPIC:P[,P...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TopicSpec {
    topic: String,
    /// `None`: every partition.
    partitions: Option<Vec<i32>>,
}

/// Parses `TOPIC` or `TOPIC:P[,P...]` (Kafka topic names cannot contain `:`).
fn parse_topic_spec(text: &str) -> Result<TopicSpec, String> {
    let (topic, partitions) = match text.split_once(':') {
        None => (text, None),
        Some((topic, list)) => {
            let mut partitions = BTreeSet::new();
            for part in list.split(',') {
                let p: i32 = part.trim().parse().map_err(|_| {
                    format!("bad partition {part:?} in {text:?}; expected TOPIC:P[,P...]")
                })?;
                if p < 0 {
                    return Err(format!("partition {p} in {text:?} is negative"));
                }
                partitions.insert(p);
            }
            (topic, Some(partitions.into_iter().collect()))
        }
    };
    if topic.is_empty() {
        return Err(format!("no topic in {text:?}; expected TOPIC[:P[,P...]]"));
    }
    Ok(TopicSpec {
        topic: topic.to_string(),
        partitions,
    })
}

/// Group states Kafka defines (classic and KIP-848 groups).
const GROUP_STATES: &[&str] = &[
    "PreparingRebalance",
    "CompletingRebalance",
    "Stable",
    "Dead",
    "Empty",
    "Assigning",
    "Reconciling",
    "NotReady",
];

/// A group state in Kafka's spelling, given in any case.
fn parse_state(text: &str) -> Result<String, String> {
    GROUP_STATES
        .iter()
        .find(|s| s.eq_ignore_ascii_case(text.trim()))
        .map(|s| s.to_string())
        .ok_or_else(|| {
            format!(
                "unknown group state {text:?}; expected one of {}",
                GROUP_STATES.join(", ")
            )
        })
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses an RFC 3339 time (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00.250+02:00`) into ms
/// since the epoch. The zone is required: a time without one would be ambiguous.
fn parse_datetime_ms(text: &str) -> Result<i64, String> {
    let bad = |why: &str| format!("bad time {text:?}: {why}; expected e.g. 2024-05-01T12:00:00Z");
    let s = text.trim();
    let number = |digits: &str, what: &str| -> Result<i64, String> {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(&format!("{what} is not a number")));
        }
        digits
            .parse()
            .map_err(|_| bad(&format!("{what} is out of range")))
    };
    let (date, rest) = s
        .split_once(['T', 't', ' '])
        .ok_or_else(|| bad("no 'T' between date and time"))?;
    let date_parts: Vec<&str> = date.split('-').collect();
    let [y, mo, d] = date_parts[..] else {
        return Err(bad("the date is not YYYY-MM-DD"));
    };
    if y.len() != 4 || mo.len() != 2 || d.len() != 2 {
        return Err(bad("the date is not YYYY-MM-DD"));
    }
    let (year, month, day) = (number(y, "year")?, number(mo, "month")?, number(d, "day")?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    // The zone: Z, or +HH:MM / -HH:MM.
    let (time, offset_minutes) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, 0)
    } else {
        let at = rest
            .rfind(['+', '-'])
            .ok_or_else(|| bad("no zone; add Z or an offset such as +02:00"))?;
        let (time, zone) = rest.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let Some((zh, zm)) = zone[1..].split_once(':') else {
            return Err(bad("the zone offset is not +HH:MM"));
        };
        if zh.len() != 2 || zm.len() != 2 {
            return Err(bad("the zone offset is not +HH:MM"));
        }
        let (zh, zm) = (number(zh, "zone hour")?, number(zm, "zone minute")?);
        if zh > 23 || zm > 59 {
            return Err(bad("the zone offset is out of range"));
        }
        (time, sign * (zh * 60 + zm))
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, fraction)) => (hms, Some(fraction)),
        None => (time, None),
    };
    let time_parts: Vec<&str> = hms.split(':').collect();
    let [h, mi, sec] = time_parts[..] else {
        return Err(bad("the time is not HH:MM:SS"));
    };
    if h.len() != 2 || mi.len() != 2 || sec.len() != 2 {
        return Err(bad("the time is not HH:MM:SS"));
    }
    let (hour, minute, second) = (
        number(h, "hour")?,
        number(mi, "minute")?,
        number(sec, "second")?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("the time is out of range"));
    }
    let millis = match fraction {
        None => 0,
        Some(f) => {
            number(f, "fraction of a second")?;
            // Milliseconds: the first three digits, padded.
            let padded: String = f.chars().chain("000".chars()).take(3).collect();
            number(&padded, "fraction of a second")?
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    let ms = seconds * 1_000 + millis;
    if ms < 0 {
        return Err(bad("times before 1970 cannot be looked up"));
    }
    Ok(ms)
}

/// Parses a duration into ms: ISO 8601 `PnDTnHnMn.nS` (as Kafka's `--by-duration`), or a
/// short form of numbers with units `d`, `h`, `m`, `s`, `ms` (`10m`, `1h30m`, `500ms`).
fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let bad = |why: &str| {
        format!("bad duration {text:?}: {why}; expected e.g. PT10M, P1DT2H, 10m or 1h30m")
    };
    let s = text.trim();
    let overflow = || bad("too long");
    let add = |total: i64, value: i64, unit_ms: i64| -> Result<i64, String> {
        value
            .checked_mul(unit_ms)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(overflow)
    };
    if let Some(iso) = s.strip_prefix(['P', 'p']) {
        let (date, time) = match iso.split_once(['T', 't']) {
            Some((date, time)) => {
                if time.is_empty() {
                    return Err(bad("nothing after 'T'"));
                }
                (date, time)
            }
            None => (iso, ""),
        };
        if date.is_empty() && time.is_empty() {
            return Err(bad("no amount"));
        }
        let mut total = 0i64;
        if !date.is_empty() {
            let days = date
                .strip_suffix(['D', 'd'])
                .ok_or_else(|| bad("only days (D) may come before 'T'"))?;
            let days: i64 = days.parse().map_err(|_| bad("the days are not a number"))?;
            if days < 0 {
                return Err(bad("negative amounts are not allowed"));
            }
            total = add(total, days, 86_400_000)?;
        }
        let mut rest = time;
        let mut last_unit = 0;
        while !rest.is_empty() {
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| bad("a number without a unit"))?;
            let (amount, tail) = rest.split_at(end);
            let unit = tail.chars().next().map(|c| c.to_ascii_uppercase());
            let rank = match unit {
                Some('H') => 1,
                Some('M') => 2,
                Some('S') => 3,
                _ => return Err(bad("units after 'T' are H, M and S")),
            };
            if rank <= last_unit {
                return Err(bad("units must come in the order H, M, S, once each"));
            }
            last_unit = rank;
            if amount.is_empty() {
                return Err(bad("a unit without a number"));
            }
            total = if rank == 3 {
                let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
                let whole: i64 = whole
                    .parse()
                    .map_err(|_| bad("the seconds are not a number"))?;
                if !fraction.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("the seconds are not a number"));
                }
                let padded: String = fraction.chars().chain("000".chars()).take(3).collect();
                let millis: i64 = padded
                    .parse()
                    .map_err(|_| bad("the seconds are not a number"))?;
                add(add(total, whole, 1_000)?, millis, 1)?
            } else {
                let value: i64 = amount
                    .parse()
                    .map_err(|_| bad("only seconds may have a fraction"))?;
                add(total, value, if rank == 1 { 3_600_000 } else { 60_000 })?
            };
            rest = &tail[1..];
        }
        return Ok(total);
    }
    // Short form: one or more NUMBER UNIT pairs.
    let mut total = 0i64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad("empty"));
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| bad("a number without a unit"))?;
        if end == 0 {
            return Err(bad("expected a number"));
        }
        let value: i64 = rest[..end].parse().map_err(|_| overflow())?;
        let tail = &rest[end..];
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let unit_ms = match tail[..unit_len].to_ascii_lowercase().as_str() {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            other => return Err(bad(&format!("unknown unit {other:?}"))),
        };
        total = add(total, value, unit_ms)?;
        rest = &tail[unit_len..];
    }
    Ok(total)
}

/// The offset a partition moves to. `by_time` is the ListOffsets answer for a timestamp
/// (`None`: no record that late, so the log end). The result is clamped to
/// `[earliest, latest]`, as Kafka's tool does.
fn new_offset(
    spec: ResetSpec,
    current: Option<i64>,
    earliest: i64,
    latest: i64,
    by_time: Option<i64>,
) -> Result<i64, String> {
    let wanted = match spec {
        ResetSpec::Earliest => earliest,
        ResetSpec::Latest => latest,
        ResetSpec::Offset(offset) => offset,
        ResetSpec::Timestamp(_) => by_time.unwrap_or(latest),
        ResetSpec::ShiftBy(n) => match current {
            Some(current) => current.saturating_add(n),
            None => return Err("it has no committed offset to shift".to_string()),
        },
    };
    Ok(wanted.clamp(earliest, latest.max(earliest)))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs `spate group`.
pub fn run(args: GroupArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let client = args.client.connect().await?;
        match args.command {
            GroupCommand::List(a) => list(&client, a).await,
            GroupCommand::Describe(a) => describe(&client, a).await,
            GroupCommand::Delete(a) => delete(&client, a).await,
            GroupCommand::ResetOffsets(a) => reset_offsets(&client, a).await,
        }
    })
}

pub(super) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if !super::client_args::is_broken_pipe(&e) => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Columns padded to their widest cell, separated by two spaces; the last is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.truncate(out.trim_end().len());
        out.push('\n');
        out
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

async fn list(client: &Client, args: ListArgs) -> anyhow::Result<()> {
    let groups = client.list_groups(&args.states).await?;
    let text = match args.format {
        Format::Json => {
            let list: Vec<_> = groups
                .iter()
                .map(|g| {
                    json!({
                        "group": g.group_id,
                        "state": g.state,
                        "type": g.group_type,
                        "protocol_type": g.protocol_type,
                        "coordinator": g.coordinator_id,
                    })
                })
                .collect();
            format!("{}\n", serde_json::Value::Array(list))
        }
        Format::Text if groups.is_empty() => String::new(),
        Format::Text => {
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    vec![
                        g.group_id.clone(),
                        dash(g.state.as_deref()),
                        dash(g.group_type.as_deref().and_then(non_empty)),
                        dash(non_empty(&g.protocol_type)),
                    ]
                })
                .collect();
            table(&["GROUP", "STATE", "TYPE", "PROTOCOL-TYPE"], &rows)
        }
    };
    print(&text)
}

/// One row of `describe`: a partition (committed or assigned), or a member without one.
struct Row<'a> {
    topic: Option<String>,
    partition: Option<i32>,
    current: Option<i64>,
    end: Option<i64>,
    member: Option<&'a GroupMember>,
}

impl Row<'_> {
    fn lag(&self) -> Option<i64> {
        Some(self.end? - self.current?)
    }
}

/// Log end offsets of `partitions` (topic to partitions); partitions of topics that no
/// longer exist are left out.
async fn log_end_offsets(
    client: &Client,
    partitions: &BTreeMap<String, BTreeSet<i32>>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let mut ends = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(ends);
    }
    let names: Vec<String> = partitions.keys().cloned().collect();
    let metadata = client.metadata(Some(&names), false).await?;
    for topic in metadata.topics {
        if topic.error.is_some() {
            continue;
        }
        let Some(wanted) = partitions.get(&topic.name) else {
            continue;
        };
        let queries: Vec<(i32, OffsetSpec)> = wanted
            .iter()
            .filter(|&&p| topic.partition(p).is_some_and(|m| m.leader >= 0))
            .map(|&p| (p, OffsetSpec::Latest))
            .collect();
        if queries.is_empty() {
            continue;
        }
        let listed = client
            .list_offsets(&topic, &queries)
            .await
            .with_context(|| format!("cannot read the log end offsets of topic {}", topic.name))?;
        for (partition, listed) in listed {
            if let Some(offset) = listed.offset {
                ends.insert((topic.name.clone(), partition), offset);
            }
        }
    }
    Ok(ends)
}

async fn describe(client: &Client, args: DescribeArgs) -> anyhow::Result<()> {
    let group = &args.group;
    let description = client.describe_group(group).await?;
    let committed = client.committed_offsets(group, None).await?;
    let Some(description) = description.or_else(|| {
        // Kafka reports a group that only holds offsets as Empty; a coordinator that says
        // Dead while offsets exist is shown as such rather than hidden.
        (!committed.is_empty()).then(|| GroupDescription {
            group_id: group.clone(),
            group_type: spate_client::GroupType::Classic,
            state: "Dead".to_string(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
            coordinator: spate_client::Coordinator {
                node_id: -1,
                host: String::new(),
                port: -1,
            },
        })
    }) else {
        bail!("group {group:?} does not exist");
    };

    let mut owners: BTreeMap<(String, i32), &GroupMember> = BTreeMap::new();
    let mut idle_members = Vec::new();
    for member in &description.members {
        match member.assignment.partitions() {
            Some(parts) if !parts.is_empty() => {
                for (topic, ps) in parts {
                    for &p in ps {
                        owners.insert((topic.clone(), p), member);
                    }
                }
            }
            _ => idle_members.push(member),
        }
    }
    let current: BTreeMap<(String, i32), i64> = committed
        .iter()
        .map(|c| ((c.topic.clone(), c.partition), c.offset))
        .collect();
    let mut partitions: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (topic, p) in owners.keys().chain(current.keys()) {
        partitions.entry(topic.clone()).or_default().insert(*p);
    }
    let ends = log_end_offsets(client, &partitions).await?;
    let mut rows: Vec<Row> = partitions
        .iter()
        .flat_map(|(topic, ps)| ps.iter().map(move |&p| (topic.clone(), p)))
        .map(|key| Row {
            current: current.get(&key).copied(),
            end: ends.get(&key).copied(),
            member: owners.get(&key).copied(),
            topic: Some(key.0),
            partition: Some(key.1),
        })
        .collect();
    rows.extend(idle_members.into_iter().map(|m| Row {
        topic: None,
        partition: None,
        current: None,
        end: None,
        member: Some(m),
    }));
    let total_lag: i64 = rows.iter().filter_map(Row::lag).sum();

    let text = match args.format {
        Format::Json => {
            let members: Vec<_> = description
                .members
                .iter()
                .map(|m| {
                    let (assignment, error) = match &m.assignment {
                        MemberAssignment::Partitions(parts) => (
                            Some(
                                parts
                                    .iter()
                                    .map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                                    .collect::<Vec<_>>(),
                            ),
                            None,
                        ),
                        MemberAssignment::Opaque { .. } => (None, None),
                        MemberAssignment::Malformed { reason } => (None, Some(reason.clone())),
                    };
                    json!({
                        "member_id": m.member_id,
                        "group_instance_id": m.group_instance_id,
                        "client_id": m.client_id,
                        "host": m.client_host,
                        "assignment": assignment,
                        "assignment_error": error,
                    })
                })
                .collect();
            let offsets: Vec<_> = rows
                .iter()
                .map(|r| {
                    json!({
                        "topic": r.topic,
                        "partition": r.partition,
                        "current_offset": r.current,
                        "log_end_offset": r.end,
                        "lag": r.lag(),
                        "consumer_id": r.member.map(|m| &m.member_id),
                        "host": r.member.map(|m| &m.client_host),
                        "client_id": r.member.map(|m| &m.client_id),
                    })
                })
                .collect();
            let coordinator = (description.coordinator.node_id >= 0).then(|| {
                json!({
                    "id": description.coordinator.node_id,
                    "host": description.coordinator.host,
                    "port": description.coordinator.port,
                })
            });
            let doc = json!({
                "group": description.group_id,
                "type": description.group_type.name(),
                "state": description.state,
                "protocol_type": description.protocol_type,
                "protocol": description.protocol,
                "coordinator": coordinator,
                "members": members,
                "offsets": offsets,
                "total_lag": total_lag,
            });
            format!("{doc}\n")
        }
        Format::Text => {
            let coordinator = &description.coordinator;
            let mut out = format!(
                "Group: {}\tType: {}\tState: {}\tProtocolType: {}\tProtocol: {}\tMembers: {}\tCoordinator: {}\tTotalLag: {total_lag}\n\n",
                description.group_id,
                description.group_type.name(),
                description.state,
                dash(non_empty(&description.protocol_type)),
                dash(non_empty(&description.protocol)),
                description.members.len(),
                if coordinator.node_id >= 0 {
                    format!(
                        "{} ({}:{})",
                        coordinator.node_id, coordinator.host, coordinator.port
                    )
                } else {
                    "-".to_string()
                },
            );
            let table_rows: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    vec![
                        description.group_id.clone(),
                        dash(r.topic.as_deref()),
                        dash(r.partition),
                        dash(r.current),
                        dash(r.end),
                        dash(r.lag()),
                        dash(r.member.map(|m| m.member_id.as_str())),
                        dash(r.member.map(|m| m.client_host.as_str())),
                        dash(r.member.map(|m| m.client_id.as_str())),
                    ]
                })
                .collect();
            out.push_str(&table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "LOG-END-OFFSET",
                    "LAG",
                    "CONSUMER-ID",
                    "HOST",
                    "CLIENT-ID",
                ],
                &table_rows,
            ));
            for m in &description.members {
                if let MemberAssignment::Malformed { reason } = &m.assignment {
                    out.push_str(&format!(
                        "member {} has an assignment that does not parse: {reason}\n",
                        m.member_id
                    ));
                }
            }
            out
        }
    };
    print(&text)
}

async fn delete(client: &Client, args: DeleteArgs) -> anyhow::Result<()> {
    let results = client.delete_groups(&args.groups).await;
    let mut failures = Vec::new();
    for (group, result) in results {
        match result {
            Ok(()) => print(&format!("deleted group {group}\n"))?,
            Err(e) => failures.push(match e.kafka_code() {
                Some(code::NON_EMPTY_GROUP) => format!(
                    "cannot delete group {group:?}: NON_EMPTY_GROUP: it has active members; \
                     stop its consumers first"
                ),
                Some(code::GROUP_ID_NOT_FOUND) => {
                    format!("cannot delete group {group:?}: it does not exist")
                }
                _ => e.to_string(),
            }),
        }
    }
    if !failures.is_empty() {
        bail!("{}", failures.join("\n"));
    }
    Ok(())
}

/// One partition of a reset plan.
struct PlannedOffset {
    topic: String,
    partition: i32,
    current: Option<i64>,
    new: i64,
}

async fn reset_offsets(client: &Client, args: ResetArgs) -> anyhow::Result<()> {
    let group = &args.group;
    let spec = args.target.spec(now_ms())?;
    if let Some(description) = client.describe_group(group).await? {
        if description.state != "Empty" {
            bail!(
                "cannot reset offsets of group {group:?}: it is {} with {} members; offsets can \
                 only be reset while the group is Empty, so stop its consumers first",
                description.state,
                description.members.len()
            );
        }
    }

    // Topic to partitions (None: all of the topic's partitions).
    let mut wanted: BTreeMap<String, Option<BTreeSet<i32>>> = BTreeMap::new();
    if args.all_topics {
        let committed = client.committed_offsets(group, None).await?;
        if committed.is_empty() {
            bail!("group {group:?} has no committed offsets; name topics with --topic");
        }
        for c in committed {
            wanted
                .entry(c.topic)
                .or_insert_with(|| Some(BTreeSet::new()))
                .get_or_insert_with(BTreeSet::new)
                .insert(c.partition);
        }
    } else {
        for spec in &args.topics {
            match (&spec.partitions, wanted.get_mut(&spec.topic)) {
                (_, Some(None)) => {}
                (None, _) => {
                    wanted.insert(spec.topic.clone(), None);
                }
                (Some(ps), Some(Some(existing))) => existing.extend(ps),
                (Some(ps), None) => {
                    wanted.insert(spec.topic.clone(), Some(ps.iter().copied().collect()));
                }
            }
        }
    }

    let mut plan = Vec::new();
    for (topic, partitions) in &wanted {
        let metadata = client.topic_metadata(topic, false).await?;
        let partitions: Vec<i32> = match partitions {
            Some(ps) => ps.iter().copied().collect(),
            None => metadata.partitions.iter().map(|p| p.partition).collect(),
        };
        for &p in &partitions {
            metadata.leader_of(p)?;
        }
        let current: BTreeMap<i32, i64> = client
            .committed_offsets(group, Some(&[(topic.clone(), partitions.clone())]))
            .await?
            .into_iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        let lookup = |spec: OffsetSpec| {
            let queries: Vec<(i32, OffsetSpec)> = partitions.iter().map(|&p| (p, spec)).collect();
            let metadata = &metadata;
            async move { client.list_offsets(metadata, &queries).await }
        };
        let earliest = lookup(OffsetSpec::Earliest).await?;
        let latest = lookup(OffsetSpec::Latest).await?;
        let by_time = match spec {
            ResetSpec::Timestamp(ms) => Some(lookup(OffsetSpec::Timestamp(ms)).await?),
            _ => None,
        };
        for &p in &partitions {
            let bound = |map: &BTreeMap<i32, spate_client::ListedOffset>, what: &str| {
                map.get(&p)
                    .and_then(|o| o.offset)
                    .with_context(|| format!("no {what} offset for {topic}-{p}"))
            };
            let (earliest, latest) = (bound(&earliest, "earliest")?, bound(&latest, "latest")?);
            let at_time = by_time
                .as_ref()
                .and_then(|m| m.get(&p))
                .and_then(|o| o.offset);
            let current = current.get(&p).copied();
            let new = new_offset(spec, current, earliest, latest, at_time)
                .map_err(|why| anyhow::anyhow!("cannot reset {topic}-{p}: {why}"))?;
            plan.push(PlannedOffset {
                topic: topic.clone(),
                partition: p,
                current,
                new,
            });
        }
    }

    if args.execute {
        let offsets: Vec<(String, i32, i64)> = plan
            .iter()
            .map(|o| (o.topic.clone(), o.partition, o.new))
            .collect();
        if let Err(e) = client.commit_group_offsets(group, &offsets).await {
            if matches!(
                e.kafka_code(),
                Some(code::UNKNOWN_MEMBER_ID | code::ILLEGAL_GENERATION)
            ) {
                bail!(
                    "cannot reset offsets of group {group:?}: consumers joined it meanwhile \
                     ({e}); stop them and retry"
                );
            }
            return Err(e.into());
        }
    }

    let text = match args.format {
        Format::Json => {
            let offsets: Vec<_> = plan
                .iter()
                .map(|o| {
                    json!({
                        "topic": o.topic,
                        "partition": o.partition,
                        "current_offset": o.current,
                        "new_offset": o.new,
                    })
                })
                .collect();
            format!(
                "{}\n",
                json!({"group": group, "executed": args.execute, "offsets": offsets})
            )
        }
        Format::Text => {
            let rows: Vec<Vec<String>> = plan
                .iter()
                .map(|o| {
                    vec![
                        group.clone(),
                        o.topic.clone(),
                        o.partition.to_string(),
                        dash(o.current),
                        o.new.to_string(),
                    ]
                })
                .collect();
            table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "CURRENT-OFFSET",
                    "NEW-OFFSET",
                ],
                &rows,
            )
        }
    };
    print(&text)?;
    if !args.execute {
        eprintln!("dry run: nothing was committed; pass --execute to commit these offsets");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs() {
        assert_eq!(
            parse_topic_spec("orders"),
            Ok(TopicSpec {
                topic: "orders".to_string(),
                partitions: None
            })
        );
        assert_eq!(
            parse_topic_spec("orders:2,0,2"),
            Ok(TopicSpec {
                topic: "orders".to_string(),
                partitions: Some(vec![0, 2])
            })
        );
        assert_eq!(
            parse_topic_spec("a.b-c_d:7").map(|s| s.partitions),
            Ok(Some(vec![7]))
        );
        for bad in ["", ":1", "t:", "t:x", "t:1,,2", "t:-1", "t:1:2"] {
            assert!(parse_topic_spec(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn states_take_kafka_spelling() {
        assert_eq!(parse_state("stable"), Ok("Stable".to_string()));
        assert_eq!(parse_state("EMPTY"), Ok("Empty".to_string()));
        assert_eq!(
            parse_state("preparingrebalance"),
            Ok("PreparingRebalance".to_string())
        );
        assert!(parse_state("busy").is_err());
    }

    #[test]
    fn rfc3339_times() {
        let cases = [
            ("1970-01-01T00:00:00Z", 0),
            ("1970-01-01T00:00:01.5Z", 1_500),
            ("2024-05-01T12:00:00Z", 1_714_564_800_000),
            ("2024-05-01T14:00:00+02:00", 1_714_564_800_000),
            ("2024-05-01t07:30:00.123456-04:30", 1_714_564_800_123),
            ("2024-02-29 00:00:00z", 1_709_164_800_000),
            ("2000-03-01T00:00:00Z", 951_868_800_000),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_datetime_ms(text), Ok(ms), "{text}");
        }
        for bad in [
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00+2:00",
            "1969-12-31T23:59:59Z",
            "24-05-01T12:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:+0Z",
        ] {
            assert!(parse_datetime_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations() {
        let cases = [
            ("PT10M", 600_000),
            ("P1DT2H", 93_600_000),
            ("P2D", 172_800_000),
            ("pt1h30m15.5s", 5_415_500),
            ("PT0.25S", 250),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("2d", 172_800_000),
            ("500ms", 500),
            ("1M", 60_000),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse_duration_ms(text), Ok(ms), "{text}");
        }
        for bad in [
            "",
            "P",
            "PT",
            "P1H",
            "PT1D",
            "PT1M1H",
            "PT1.5M",
            "10",
            "m",
            "10x",
            "-5m",
            "P-1D",
            "99999999999999999999s",
            "9999999999999d",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn new_offsets_are_clamped_to_the_log() {
        use ResetSpec::*;
        // earliest 10, latest 50, committed 30
        let at = |spec, current, by_time| new_offset(spec, current, 10, 50, by_time);
        assert_eq!(at(Earliest, Some(30), None), Ok(10));
        assert_eq!(at(Latest, Some(30), None), Ok(50));
        assert_eq!(at(Offset(20), None, None), Ok(20));
        assert_eq!(at(Offset(0), None, None), Ok(10));
        assert_eq!(at(Offset(1_000), None, None), Ok(50));
        assert_eq!(at(ShiftBy(-5), Some(30), None), Ok(25));
        assert_eq!(at(ShiftBy(-100), Some(30), None), Ok(10));
        assert_eq!(at(ShiftBy(100), Some(30), None), Ok(50));
        assert_eq!(at(ShiftBy(i64::MAX), Some(30), None), Ok(50));
        assert!(at(ShiftBy(1), None, None).is_err());
        assert_eq!(at(Timestamp(5), None, Some(42)), Ok(42));
        // No record at or after the time: the log end, as Kafka does.
        assert_eq!(at(Timestamp(5), Some(30), None), Ok(50));
        // An empty partition.
        assert_eq!(new_offset(Earliest, None, 0, 0, None), Ok(0));
    }

    #[test]
    fn by_duration_looks_back_from_now() {
        let target = ResetTarget {
            to_earliest: false,
            to_latest: false,
            to_offset: None,
            to_datetime: None,
            shift_by: None,
            by_duration: Some(60_000),
        };
        assert_eq!(
            target.spec(1_000_000).ok(),
            Some(ResetSpec::Timestamp(940_000))
        );
        assert_eq!(target.spec(1_000).ok(), Some(ResetSpec::Timestamp(0)));
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["A", "LONGER"],
            &[
                vec!["xyz".to_string(), "1".to_string()],
                vec!["-".to_string(), "22".to_string()],
            ],
        );
        assert_eq!(text, "A    LONGER\nxyz  1\n-    22\n");
    }
}
