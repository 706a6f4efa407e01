//! Alerts (`chiso serve --alerts FILE`): rules over the figures, checked on
//! every working day from a local time the rule names, and sent as a JSON
//! `POST` to webhooks, so that a ward hears of its dossiers due soon before
//! they go late, and the city of the wards that crossed a line.
//!
//! A rule has a kind and a threshold: `due_soon` (more than `above`
//! dossiers due within `days` working days), `overdue` (more than `above`
//! overdue now), `on_time_below` (this month's on-time rate below `below`
//! %), `progress_fall` (the 766 progress ratio of the week just ended down
//! `above` points or more on the week before), `no_ingest` (no event for
//! the ward in `days` days). Its recipients are webhook URLs: per ward
//! (`wards`), for every ward (`every_ward`, one message per ward, for a
//! relay that routes by `ward_code`), and for the city (`city`, one message
//! listing the wards). A ward's message carries its own figures and
//! dossiers only.
//!
//! Each delivery (rule, ward or city, recipient, local day) is sent once:
//! it is recorded in the store's Delta table `alerts` with its figures,
//! message and status, and a delivery already `sent` that day is not sent
//! again, across restarts. A failed `POST` (no answer, or not 2xx) is tried
//! again after 1, 2 and 4 s; a delivery still failing is recorded `failed`
//! and tried at the next check, at most [`MOST_FAILED_ROUNDS`] times a day.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chiso_core::calendar::WorkCalendar;
use chiso_core::format::vi_decimal;
use chiso_core::time::{business_offset, format_local, local_date};
use chiso_core::wards::{WardCode, WardRegistry};
use chiso_dashboard::{Table, Value};
use chiso_engine::Engine;
use chiso_store::{Store, Table as StoreTable};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::Deserialize;
use serde_json::json;

/// Why the alerts file cannot be used, or a check failed.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("{}: {reason}", .path.display())]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    Engine(Box<chiso_engine::EngineError>),
    #[error(transparent)]
    Store(Box<chiso_store::StoreError>),
}

impl From<chiso_engine::EngineError> for AlertsError {
    fn from(error: chiso_engine::EngineError) -> Self {
        Self::Engine(Box::new(error))
    }
}

impl From<chiso_store::StoreError> for AlertsError {
    fn from(error: chiso_store::StoreError) -> Self {
        Self::Store(Box::new(error))
    }
}

/// Rounds of failed deliveries a day, at most, before a recipient is left
/// alone until the next day.
pub const MOST_FAILED_ROUNDS: usize = 3;
/// Tries of one `POST` in a round: at once, then after 1, 2 and 4 s.
const TRIES: u32 = 4;
/// Dossiers listed in a due-soon message, at most (the page has them all).
const LISTED: usize = 20;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    /// The address readers open the pages at, for the links in messages.
    base_url: Option<String>,
    #[serde(default, rename = "rule")]
    rules: Vec<RuleFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    id: String,
    kind: String,
    above: Option<f64>,
    below: Option<f64>,
    days: Option<u32>,
    /// Local time (`07:30`) from which the rule is checked each working day.
    at: String,
    #[serde(default)]
    city: Vec<String>,
    #[serde(default)]
    every_ward: Vec<String>,
    #[serde(default)]
    wards: BTreeMap<String, Vec<String>>,
}

/// What a rule watches, with its threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    DueSoon { above: f64, days: u32 },
    Overdue { above: f64 },
    OnTimeBelow { below: f64 },
    ProgressFall { points: f64 },
    NoIngest { days: u32 },
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::DueSoon { .. } => "due_soon",
            Self::Overdue { .. } => "overdue",
            Self::OnTimeBelow { .. } => "on_time_below",
            Self::ProgressFall { .. } => "progress_fall",
            Self::NoIngest { .. } => "no_ingest",
        }
    }

    fn threshold(self) -> f64 {
        match self {
            Self::DueSoon { above, .. } | Self::Overdue { above } => above,
            Self::OnTimeBelow { below } => below,
            Self::ProgressFall { points } => points,
            Self::NoIngest { days } => f64::from(days),
        }
    }
}

/// One rule of the file.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub kind: Kind,
    pub at: NaiveTime,
    city: Vec<String>,
    every_ward: Vec<String>,
    wards: BTreeMap<String, Vec<String>>,
}

/// A ward that crossed a rule's line.
#[derive(Debug, Clone)]
struct Finding {
    ward_code: String,
    ward_name: String,
    value: f64,
    text: String,
    dossiers: Vec<serde_json::Value>,
}

/// One message to one recipient.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub rule: String,
    /// `None` for the city's message.
    pub ward_code: Option<String>,
    pub recipient: String,
    pub body: serde_json::Value,
}

impl Delivery {
    /// The message's text, as the recipient reads it.
    pub fn text(&self) -> &str {
        self.body["text"].as_str().unwrap_or_default()
    }

    fn key(&self, day: NaiveDate) -> (String, String, String, String) {
        (
            day.to_string(),
            self.rule.clone(),
            self.ward_code.clone().unwrap_or_default(),
            self.recipient.clone(),
        )
    }
}

/// The rules of an alerts file, and how to send them.
#[derive(Debug)]
pub struct Alerts {
    rules: Vec<Rule>,
    base_url: String,
    calendar: WorkCalendar,
    client: reqwest::Client,
    /// Rules whose every delivery went out, by day, in this process.
    finished: Mutex<HashSet<(NaiveDate, String)>>,
}

impl Alerts {
    /// Reads and checks an alerts file.
    pub fn load(path: &Path, calendar: WorkCalendar) -> Result<Self, AlertsError> {
        let invalid = |reason: String| AlertsError::File {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let file: AlertsFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        let mut rules = Vec::new();
        for rule in file.rules {
            let rule = read_rule(rule).map_err(&invalid)?;
            if rules.iter().any(|r: &Rule| r.id == rule.id) {
                return Err(invalid(format!("two rules have the id `{}`", rule.id)));
            }
            rules.push(rule);
        }
        if rules.is_empty() {
            return Err(invalid("no [[rule]]".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| invalid(format!("cannot make an HTTP client: {e}")))?;
        Ok(Self {
            rules,
            base_url: file
                .base_url
                .unwrap_or_else(|| "http://127.0.0.1:8080".into())
                .trim_end_matches('/')
                .to_owned(),
            calendar,
            client,
            finished: Mutex::new(HashSet::new()),
        })
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Every message the rules give at the engine's now, whatever the time
    /// of day and whatever was sent (`chiso alerts test`).
    pub async fn deliveries(&self, engine: &Engine) -> Result<Vec<Delivery>, AlertsError> {
        let mut all = Vec::new();
        for rule in &self.rules {
            all.extend(self.rule_deliveries(engine, rule).await?);
        }
        Ok(all)
    }

    async fn rule_deliveries(
        &self,
        engine: &Engine,
        rule: &Rule,
    ) -> Result<Vec<Delivery>, AlertsError> {
        let now = engine.now();
        let day = local_date(now);
        let findings = findings(engine, rule).await?;
        // What every message of the rule says, whoever it is for.
        let message = |link: String, text: String, fields: serde_json::Value| {
            let mut body = json!({
                "source": "chiso",
                "rule": rule.id,
                "kind": rule.kind.name(),
                "day": day.to_string(),
                "at": format_local(now),
                "threshold": rule.kind.threshold(),
                "text": text,
                "link": link,
            });
            if let (Some(body), serde_json::Value::Object(fields)) = (body.as_object_mut(), fields)
            {
                body.extend(fields);
            }
            body
        };
        let mut deliveries = Vec::new();
        let mut deliver =
            |ward_code: Option<&str>, recipient: &String, body: &serde_json::Value| {
                deliveries.push(Delivery {
                    rule: rule.id.clone(),
                    ward_code: ward_code.map(str::to_owned),
                    recipient: recipient.clone(),
                    body: body.clone(),
                });
            };
        for finding in &findings {
            let link = format!("{}/ward/{}", self.base_url, finding.ward_code);
            let body = message(
                link.clone(),
                format!("{} Xem: {link}", finding.text),
                json!({
                    "ward_code": finding.ward_code,
                    "ward_name": finding.ward_name,
                    "value": finding.value,
                    "dossiers": finding.dossiers,
                }),
            );
            let own = rule.wards.get(&finding.ward_code).into_iter().flatten();
            for recipient in own.chain(&rule.every_ward) {
                deliver(Some(&finding.ward_code), recipient, &body);
            }
        }
        if !findings.is_empty() {
            let lines: Vec<String> = findings
                .iter()
                .map(|f| format!("- {}", first_line(&f.text)))
                .collect();
            let link = format!("{}/flags", self.base_url);
            let body = message(
                link.clone(),
                format!(
                    "{} xã, phường cần chú ý ({}):\n{}\nXem: {link}",
                    findings.len(),
                    rule.id,
                    lines.join("\n")
                ),
                json!({
                    "ward_code": null,
                    "wards": findings.iter().map(|f| json!({
                        "ward_code": f.ward_code,
                        "ward_name": f.ward_name,
                        "value": f.value,
                    })).collect::<Vec<_>>(),
                }),
            );
            for recipient in &rule.city {
                deliver(None, recipient, &body);
            }
        }
        Ok(deliveries)
    }

    /// Sends what is due at the engine's now: on a working day, each rule
    /// from its time on, each delivery not yet sent that day (as the store's
    /// `alerts` table says). Returns the deliveries sent.
    pub async fn check(&self, engine: &Engine, store: &Path) -> Result<usize, AlertsError> {
        let now = engine.now();
        let local = now.with_timezone(&business_offset());
        let day = local.date_naive();
        if !self.calendar.is_working_day(day) {
            return Ok(0);
        }
        let mut sent = 0;
        for rule in &self.rules {
            let key = (day, rule.id.clone());
            let finished = self
                .finished
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key);
            if finished || local.time() < rule.at {
                continue;
            }
            let mut store = Store::open(store).await?;
            let history = history(&store, day).await?;
            let mut all_sent = true;
            let mut rows = Vec::new();
            for delivery in self.rule_deliveries(engine, rule).await? {
                let past = history.get(&delivery.key(day)).copied().unwrap_or_default();
                if past.sent || past.failed >= MOST_FAILED_ROUNDS {
                    continue;
                }
                let (ok, attempts, detail) = self.send(&delivery).await;
                all_sent &= ok;
                sent += usize::from(ok);
                rows.push((delivery, ok, attempts, detail));
            }
            if !rows.is_empty() {
                record(&mut store, now, day, &rows).await?;
            }
            if all_sent {
                self.finished
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key);
            }
        }
        Ok(sent)
    }

    /// One round of tries; whether it arrived, the tries, and why not.
    async fn send(&self, delivery: &Delivery) -> (bool, i64, Option<String>) {
        let body = serde_json::to_vec(&delivery.body).unwrap_or_default();
        let mut wait = Duration::from_secs(1);
        let mut detail = None;
        for attempt in 1..=TRIES {
            let answer = self
                .client
                .post(&delivery.recipient)
                .header("content-type", "application/json; charset=utf-8")
                .body(body.clone())
                .send()
                .await;
            match answer {
                Ok(answer) if answer.status().is_success() => {
                    return (true, i64::from(attempt), detail);
                }
                Ok(answer) => detail = Some(format!("answered {}", answer.status())),
                Err(error) => detail = Some(error.to_string()),
            }
            tracing::warn!(
                rule = delivery.rule,
                recipient = delivery.recipient,
                attempt,
                detail = detail.as_deref().unwrap_or_default(),
                "an alert was not delivered"
            );
            if attempt < TRIES {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        (false, i64::from(TRIES), detail)
    }
}

/// Checks the rules every minute, with the engine being served.
pub async fn run(alerts: Arc<Alerts>, state: Arc<crate::AppState>) {
    loop {
        let engine = state.live.current().engine.clone();
        match alerts.check(&engine, state.live.root()).await {
            Ok(0) => {}
            Ok(sent) => tracing::info!(sent, "alerts sent"),
            Err(error) => tracing::warn!(%error, "could not check the alerts"),
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
    }
}

fn read_rule(rule: RuleFile) -> Result<Rule, String> {
    let id = rule.id.trim().to_owned();
    if id.is_empty() || id.len() > 64 {
        return Err("a rule needs an id of 1 to 64 characters".into());
    }
    let needs = |value: Option<f64>, name: &str| {
        value
            .filter(|v| v.is_finite() && *v >= 0.0)
            .ok_or_else(|| format!("rule `{id}` ({}) needs `{name}`, a number ≥ 0", rule.kind))
    };
    let kind = match rule.kind.as_str() {
        "due_soon" => Kind::DueSoon {
            above: needs(rule.above, "above")?,
            days: rule.days.unwrap_or(2).min(chiso_engine::MOST_DUE_SOON_DAYS),
        },
        "overdue" => Kind::Overdue {
            above: needs(rule.above, "above")?,
        },
        "on_time_below" => Kind::OnTimeBelow {
            below: needs(rule.below, "below")?,
        },
        "progress_fall" => Kind::ProgressFall {
            points: needs(rule.above, "above")?,
        },
        "no_ingest" => Kind::NoIngest {
            days: rule
                .days
                .filter(|d| (1..=366).contains(d))
                .ok_or_else(|| format!("rule `{id}` (no_ingest) needs `days`, 1 to 366"))?,
        },
        other => {
            return Err(format!(
                "rule `{id}`: unknown kind `{other}`; use due_soon, overdue, on_time_below, \
                 progress_fall or no_ingest"
            ));
        }
    };
    let at = NaiveTime::parse_from_str(rule.at.trim(), "%H:%M")
        .map_err(|_| format!("rule `{id}`: `at` is a local time such as 07:30"))?;
    let registry = WardRegistry::builtin();
    let mut wards = BTreeMap::new();
    for (code, recipients) in rule.wards {
        let code: WardCode = registry
            .code(&code)
            .map_err(|e| format!("rule `{id}`: {e}"))?;
        wards.insert(code.to_string(), recipients);
    }
    let all = rule
        .city
        .iter()
        .chain(&rule.every_ward)
        .chain(wards.values().flatten());
    let mut any = false;
    for url in all {
        any = true;
        match reqwest::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {}
            _ => return Err(format!("rule `{id}`: `{url}` is not an http(s) URL")),
        }
    }
    if !any {
        return Err(format!(
            "rule `{id}` has no recipient: give city, every_ward or wards"
        ));
    }
    Ok(Rule {
        id,
        kind,
        at,
        city: rule.city,
        every_ward: rule.every_ward,
        wards,
    })
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// The rows a rule looks at, at the engine's now, past its line: the
/// engine's figures asked with typed calls (the server has no SQL of its
/// own), filtered by the rule's threshold.
async fn rows(engine: &Engine, rule: &Rule) -> Result<Table, AlertsError> {
    use chiso_engine::datafusion::prelude::{col, lit};
    use chiso_engine::{Call, Grouping};
    let now = engine.now();
    let kpi = |period: &str, change: bool| -> Result<Call, AlertsError> {
        let period = engine.period(period)?;
        Ok(match change {
            false => Call::Kpi {
                period,
                by: Grouping::Ward,
                ward: None,
            },
            true => Call::Change {
                period,
                by: Grouping::Ward,
                ward: None,
            },
        })
    };
    let frame = match rule.kind {
        Kind::DueSoon { days, .. } => {
            engine
                .figures(&Call::DueSoon {
                    at: now,
                    days,
                    ward: None,
                })
                .await
        }
        Kind::Overdue { above } => {
            let column = "in_progress_overdue";
            let call = kpi("this-week", false)?;
            wards_past(engine, call, column, col(column).gt(lit(above))).await
        }
        Kind::OnTimeBelow { below } => {
            let column = "on_time_rate";
            let call = kpi("this-month", false)?;
            wards_past(engine, call, column, col(column).lt(lit(below))).await
        }
        Kind::ProgressFall { points } => {
            let column = "progress_ratio_change";
            let call = kpi("last-week", true)?;
            wards_past(engine, call, column, col(column).lt_eq(lit(-points))).await
        }
        Kind::NoIngest { days } => {
            let since = now - chrono::Duration::days(i64::from(days));
            let since = chiso_engine::datafusion::common::ScalarValue::TimestampMicrosecond(
                Some(since.timestamp_micros()),
                Some("UTC".into()),
            );
            engine.last_event_by_ward().await.and_then(|f| {
                Ok(f.filter(
                    col("last_event_at")
                        .is_null()
                        .or(col("last_event_at").lt(lit(since))),
                )?)
            })
        }
    };
    let failed = |e: &dyn std::fmt::Display| {
        AlertsError::from(chiso_engine::EngineError::Query(format!(
            "rule `{}`: {e}",
            rule.id
        )))
    };
    let batches = frame
        .map_err(|e| failed(&e))?
        .collect()
        .await
        .map_err(|e| failed(&e))?;
    Table::from_batches(&batches, usize::MAX).map_err(|e| failed(&e))
}

/// The wards of a by-ward call whose `column` is past the line, with the
/// column as `value`.
async fn wards_past(
    engine: &Engine,
    call: chiso_engine::Call,
    column: &str,
    past: chiso_engine::datafusion::prelude::Expr,
) -> Result<chiso_engine::datafusion::prelude::DataFrame, chiso_engine::EngineError> {
    Ok(engine
        .figures(&call)
        .await?
        .filter(past)?
        .select_columns(&["ward_code", "ward_name", column])?
        .with_column_renamed(column, "value")?)
}

/// The wards past the rule's line, at the engine's now.
async fn findings(engine: &Engine, rule: &Rule) -> Result<Vec<Finding>, AlertsError> {
    let table = rows(engine, rule).await?;
    let column = |name: &str| table.columns.iter().position(|c| c == name);
    let text_of = |row: &[Value], name: &str| -> String {
        column(name)
            .and_then(|i| row.get(i))
            .map(Value::raw_text)
            .unwrap_or_default()
    };
    let number_of = |row: &[Value], name: &str| -> f64 {
        column(name)
            .and_then(|i| row.get(i))
            .and_then(Value::as_f64)
            .unwrap_or_default()
    };
    let mut findings = Vec::new();
    match rule.kind {
        Kind::DueSoon { above, days } => {
            let mut by_ward: BTreeMap<String, (String, Vec<&Vec<Value>>)> = BTreeMap::new();
            for row in &table.rows {
                by_ward
                    .entry(text_of(row, "ward_code"))
                    .or_insert_with(|| (text_of(row, "ward_name"), Vec::new()))
                    .1
                    .push(row);
            }
            for (ward_code, (ward_name, rows)) in by_ward {
                let count = rows.len() as f64;
                if count <= above {
                    continue;
                }
                let mut lines = vec![format!(
                    "{ward_name}: {} hồ sơ sắp đến hạn trong {days} ngày làm việc tới \
                     (ngưỡng {}).",
                    rows.len(),
                    vi_decimal(above, 0)
                )];
                let mut dossiers = Vec::new();
                for row in rows.iter().take(LISTED) {
                    let due = column("effective_due_at")
                        .and_then(|i| row.get(i))
                        .and_then(|value| match value {
                            Value::Instant(t) => Some(*t),
                            _ => None,
                        });
                    let due_text = due
                        .map(|t| {
                            t.with_timezone(&business_offset())
                                .format("%H:%M %d/%m/%Y")
                                .to_string()
                        })
                        .unwrap_or_default();
                    let hours = number_of(row, "working_hours_left");
                    lines.push(format!(
                        "- {} – {} – hạn {due_text}, còn {} giờ làm việc",
                        text_of(row, "dossier_id"),
                        text_of(row, "procedure_name"),
                        vi_decimal(hours, 1)
                    ));
                    dossiers.push(json!({
                        "dossier_id": text_of(row, "dossier_id"),
                        "procedure_name": text_of(row, "procedure_name"),
                        "effective_due_at": due.map(|t| t.to_rfc3339()),
                        "working_hours_left": hours,
                    }));
                }
                if rows.len() > LISTED {
                    lines.push(format!("… và {} hồ sơ khác", rows.len() - LISTED));
                }
                findings.push(Finding {
                    ward_code,
                    ward_name,
                    value: count,
                    text: lines.join("\n"),
                    dossiers,
                });
            }
        }
        kind => {
            for row in &table.rows {
                let ward_name = text_of(row, "ward_name");
                let value = number_of(row, "value");
                let text = match kind {
                    Kind::Overdue { above } => format!(
                        "{ward_name}: {} hồ sơ đang quá hạn (ngưỡng {}).",
                        vi_decimal(value, 0),
                        vi_decimal(above, 0)
                    ),
                    Kind::OnTimeBelow { below } => format!(
                        "{ward_name}: tỷ lệ giải quyết đúng hạn tháng này {} %, dưới mục tiêu {} %.",
                        vi_decimal(value, 2),
                        vi_decimal(below, 2)
                    ),
                    Kind::ProgressFall { .. } => format!(
                        "{ward_name}: tiến độ giải quyết (Quyết định 766) tuần trước giảm {} \
                         điểm phần trăm so với tuần trước đó.",
                        vi_decimal(-value, 2)
                    ),
                    Kind::NoIngest { days } => {
                        let last =
                            column("last_event_at")
                                .and_then(|i| row.get(i))
                                .and_then(|value| match value {
                                    Value::Instant(t) => {
                                        Some(local_date(*t).format("%d/%m/%Y").to_string())
                                    }
                                    _ => None,
                                });
                        match last {
                            Some(last) => format!(
                                "{ward_name}: không có dữ liệu hồ sơ mới trong {days} ngày \
                                 (lần cuối {last})."
                            ),
                            None => format!("{ward_name}: chưa có dữ liệu hồ sơ nào."),
                        }
                    }
                    Kind::DueSoon { .. } => String::new(),
                };
                findings.push(Finding {
                    ward_code: text_of(row, "ward_code"),
                    ward_name,
                    value,
                    text,
                    dossiers: Vec::new(),
                });
            }
            // Worst first: most overdue, lowest rate, steepest fall.
            let sign = if matches!(kind, Kind::Overdue { .. }) {
                -1.0
            } else {
                1.0
            };
            if !matches!(kind, Kind::NoIngest { .. }) {
                findings.sort_by(|a, b| {
                    (sign * a.value)
                        .total_cmp(&(sign * b.value))
                        .then_with(|| a.ward_code.cmp(&b.ward_code))
                });
            }
        }
    }
    Ok(findings)
}

/// What was already sent or failed on `day`, per delivery.
#[derive(Debug, Default, Clone, Copy)]
struct Past {
    sent: bool,
    failed: usize,
}

async fn history(
    store: &Store,
    day: NaiveDate,
) -> Result<HashMap<(String, String, String, String), Past>, AlertsError> {
    let batches = store
        .query(&format!(
            "SELECT rule, coalesce(ward_code, '') AS ward_code, recipient, status FROM alerts \
             WHERE day = '{day}'"
        ))
        .await?;
    let mut past: HashMap<(String, String, String, String), Past> = HashMap::new();
    for batch in &batches {
        let text = |i: usize| {
            arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8)
                .map_err(|e| chiso_store::StoreError::Query(e.to_string()))
        };
        let (rule, ward, recipient, status) = (text(0)?, text(1)?, text(2)?, text(3)?);
        let as_text = |a: &ArrayRef| a.as_any().downcast_ref::<StringArray>().cloned();
        let (Some(rule), Some(ward), Some(recipient), Some(status)) = (
            as_text(&rule),
            as_text(&ward),
            as_text(&recipient),
            as_text(&status),
        ) else {
            continue;
        };
        for row in 0..batch.num_rows() {
            let entry = past
                .entry((
                    day.to_string(),
                    rule.value(row).to_owned(),
                    ward.value(row).to_owned(),
                    recipient.value(row).to_owned(),
                ))
                .or_default();
            match status.value(row) {
                "sent" => entry.sent = true,
                _ => entry.failed += 1,
            }
        }
    }
    Ok(past)
}

/// Appends one round's deliveries to the `alerts` table.
async fn record(
    store: &mut Store,
    now: DateTime<Utc>,
    day: NaiveDate,
    rows: &[(Delivery, bool, i64, Option<String>)],
) -> Result<(), AlertsError> {
    let texts = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMicrosecondArray::from(vec![now.timestamp_micros(); rows.len()])
                .with_timezone("UTC"),
        ),
        texts(vec![Some(day.to_string()); rows.len()]),
        texts(rows.iter().map(|r| Some(r.0.rule.clone())).collect()),
        texts(rows.iter().map(|r| r.0.ward_code.clone()).collect()),
        texts(rows.iter().map(|r| Some(r.0.recipient.clone())).collect()),
        texts(
            rows.iter()
                .map(|r| Some(if r.1 { "sent" } else { "failed" }.to_owned()))
                .collect(),
        ),
        Arc::new(Int64Array::from(
            rows.iter().map(|r| r.2).collect::<Vec<_>>(),
        )),
        texts(
            rows.iter()
                .map(|r| {
                    let mut figures = r.0.body.clone();
                    if let Some(object) = figures.as_object_mut() {
                        object.remove("text");
                    }
                    Some(figures.to_string())
                })
                .collect(),
        ),
        texts(rows.iter().map(|r| Some(r.0.text().to_owned())).collect()),
        texts(rows.iter().map(|r| r.3.clone()).collect()),
    ];
    let batch = RecordBatch::try_new(StoreTable::Alerts.schema(), columns)
        .map_err(|e| chiso_store::StoreError::Query(e.to_string()))?;
    store.refresh_table(StoreTable::Alerts).await?;
    let mut metadata = serde_json::Map::new();
    metadata.insert("chiso.operation".into(), "alerts".into());
    store
        .append(StoreTable::Alerts, vec![batch], metadata)
        .await?;
    Ok(())
}
