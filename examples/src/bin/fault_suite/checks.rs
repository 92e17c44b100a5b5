//! Reading the outputs and checking them against a computation of the input written
//! here (plain maps and loops, never the framework).

use std::collections::{BTreeMap, HashMap};

use streams_core::runtime::{Isolation, LogEngine, LogRecord};

use super::{
    Event, JOIN_MS, PAGE_COUNTS, SuiteError, VIEWS, WINDOW_COUNTS, WINDOW_GRACE_MS, WINDOW_MS,
};

/// Lost and duplicated results of one output topic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OutputCheck {
    /// Records read (read_committed).
    pub(crate) records: usize,
    /// Results the input calls for that are missing or too small.
    pub(crate) lost: usize,
    /// Results repeated, too large, or not called for at all.
    pub(crate) duplicated: usize,
    /// Examples of what is wrong, for the report (at most a few).
    pub(crate) examples: Vec<String>,
}

impl OutputCheck {
    /// The check of `records`, nothing found wrong yet.
    fn of(records: &[(String, String)]) -> Self {
        Self {
            records: records.len(),
            ..Self::default()
        }
    }

    fn lose(&mut self, why: impl FnOnce() -> String) {
        self.lost += 1;
        self.example(why);
    }

    fn duplicate(&mut self, n: usize, why: impl FnOnce() -> String) {
        if n > 0 {
            self.duplicated += n;
            self.example(why);
        }
    }

    fn example(&mut self, why: impl FnOnce() -> String) {
        if self.examples.len() < 5 {
            self.examples.push(why());
        }
    }
}

/// ISOLATION SWITCH. Reads one output partition whole, as the check sees it: as a
/// `read_committed` consumer does (what exactly-once promises). To check what a
/// `read_uncommitted` consumer sees instead (records of aborted transactions included),
/// change this one line to `Isolation::ReadUncommitted`. At-least-once writes no
/// transactions, so both read the same there.
pub(crate) fn read_output(
    engine: &LogEngine,
    topic: &str,
    partition: u32,
) -> Result<Vec<LogRecord>, SuiteError> {
    read_partition(engine, topic, partition, Isolation::ReadCommitted)
}

/// Every record of a partition a reader with `isolation` sees, in offset order.
pub(crate) fn read_partition(
    engine: &LogEngine,
    topic: &str,
    partition: u32,
    isolation: Isolation,
) -> Result<Vec<LogRecord>, SuiteError> {
    let upper = match isolation {
        Isolation::ReadCommitted => engine.last_stable_offset(topic, partition)?,
        Isolation::ReadUncommitted => engine.offsets(topic, partition)?.1,
    };
    let mut out = Vec::new();
    let mut offset = engine.offsets(topic, partition)?.0;
    while offset < upper {
        let r = engine.read_with(topic, partition, offset, 4 << 20, isolation)?;
        if r.next_offset <= offset {
            return Err(SuiteError::Output(format!(
                "{topic}/{partition}: reading at {offset} made no progress"
            )));
        }
        out.extend(r.records);
        offset = r.next_offset;
    }
    Ok(out)
}

/// Key and value of each record as UTF-8 text (the app writes strings).
pub(crate) fn decode(
    topic: &str,
    records: Vec<LogRecord>,
) -> Result<Vec<(String, String)>, SuiteError> {
    records
        .into_iter()
        .map(|r| {
            let text = |b: Option<Vec<u8>>, what: &str| {
                b.and_then(|b| String::from_utf8(b).ok()).ok_or_else(|| {
                    SuiteError::Output(format!(
                        "{topic} offset {}: {what} is not UTF-8 text",
                        r.offset
                    ))
                })
            };
            Ok((text(r.key.clone(), "key")?, text(r.value.clone(), "value")?))
        })
        .collect()
}

/// Every input record.
fn all_events<'a>(
    events: &'a BTreeMap<(&'static str, u32), Vec<Event>>,
) -> impl Iterator<Item = &'a Event> {
    events.values().flatten()
}

fn parse_count(topic: &str, key: &str, v: &str) -> i64 {
    // A value that is no count is never right: -1 matches nothing.
    v.parse().unwrap_or_else(|_| {
        eprintln!("fault_suite: {topic} {key}: value {v:?} is not a count");
        -1
    })
}

/// The counts of each key of `records` (of `topic`), in the order written.
fn counts_by_key<'a>(topic: &str, records: &'a [(String, String)]) -> HashMap<&'a str, Vec<i64>> {
    let mut got: HashMap<&str, Vec<i64>> = HashMap::new();
    for (k, v) in records {
        got.entry(k.as_str())
            .or_default()
            .push(parse_count(topic, k, v));
    }
    got
}

/// `fs-page-counts`: per page, the counts must rise strictly and end at the number of
/// views of the page. A count not above the previous one is a duplicate, a last count
/// above the true one too (input counted twice); a missing or smaller last count is lost.
pub(crate) fn check_page_counts(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    let mut want: HashMap<&str, i64> = HashMap::new();
    for e in all_events(events).filter(|e| e.topic == VIEWS) {
        *want.entry(e.page()).or_default() += 1;
    }
    let got = counts_by_key(PAGE_COUNTS, records);
    let mut c = OutputCheck::of(records);
    let mut pages: Vec<&&str> = want.keys().collect();
    pages.sort();
    for page in pages {
        let n = want[*page];
        let seq = got.get(*page).map_or(&[][..], Vec::as_slice);
        let repeats = seq.windows(2).filter(|w| w[1] <= w[0]).count();
        c.duplicate(repeats, || {
            format!("{page}: {repeats} counts not above the previous one")
        });
        match seq.last() {
            None => c.lose(|| format!("{page}: no count (want {n})")),
            Some(&last) if last < n => c.lose(|| format!("{page}: last count {last}, want {n}")),
            Some(&last) if last > n => {
                c.duplicate(1, || format!("{page}: last count {last}, want {n}"));
            }
            Some(_) => {}
        }
    }
    for (page, seq) in &got {
        if !want.contains_key(page) {
            c.duplicate(seq.len(), || format!("{page}: counted but never viewed"));
        }
    }
    c
}

/// `fs-window-counts`: exactly one record per (user, closed window) with the number of the
/// user's views in it. A missing window or a smaller count is lost; a second record, a
/// larger count, or a window that should not be there is duplicated.
pub(crate) fn check_window_counts(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    // A window closes once the stream time of its task (the views and clicks partitions of
    // the user's partition number) reaches its end plus the grace.
    let mut stream_end: HashMap<u32, i64> = HashMap::new();
    for ((_, p), list) in events {
        for e in list {
            let t = stream_end.entry(*p).or_insert(i64::MIN);
            *t = (*t).max(e.ts);
        }
    }
    let mut want: HashMap<String, i64> = HashMap::new();
    for ((topic, p), list) in events {
        if *topic != VIEWS {
            continue;
        }
        for e in list {
            let start = e.ts - e.ts.rem_euclid(WINDOW_MS);
            if start + WINDOW_MS + WINDOW_GRACE_MS <= stream_end[p] {
                *want.entry(format!("{}@{start}", e.user)).or_default() += 1;
            }
        }
    }
    let got = counts_by_key(WINDOW_COUNTS, records);
    let mut c = OutputCheck::of(records);
    let mut keys: Vec<&String> = want.keys().collect();
    keys.sort();
    for key in keys {
        let n = want[key];
        let seq = got.get(key.as_str()).map_or(&[][..], Vec::as_slice);
        if seq.is_empty() {
            c.lose(|| format!("{key}: no final count (want {n})"));
            continue;
        }
        let extra = seq.len() - 1;
        c.duplicate(extra, || {
            format!("{key}: {} final counts {seq:?}", seq.len())
        });
        if seq.iter().all(|&x| x < n) {
            c.lose(|| format!("{key}: count {seq:?}, want {n}"));
        } else if seq.iter().any(|&x| x > n) {
            c.duplicate(1, || format!("{key}: count {seq:?}, want {n}"));
        }
    }
    for (key, seq) in &got {
        if !want.contains_key(*key) {
            c.duplicate(seq.len(), || {
                format!("{key}: {seq:?} for a window with no views or still open")
            });
        }
    }
    c
}

/// `fs-joined`: every (view, click) of one user at most [`JOIN_MS`] apart exactly once
/// (nested loops per user); a missing pair is lost, a repeated or unknown one duplicated.
pub(crate) fn check_joined(
    events: &BTreeMap<(&'static str, u32), Vec<Event>>,
    records: &[(String, String)],
) -> OutputCheck {
    let mut by_user: HashMap<&str, (Vec<&Event>, Vec<&Event>)> = HashMap::new();
    for e in all_events(events) {
        let entry = by_user.entry(e.user.as_str()).or_default();
        if e.topic == VIEWS {
            entry.0.push(e);
        } else {
            entry.1.push(e);
        }
    }
    let mut want: HashMap<(String, String), usize> = HashMap::new();
    for (user, (views, clicks)) in &by_user {
        for v in views {
            for k in clicks {
                if (v.ts - k.ts).abs() <= JOIN_MS {
                    want.insert(((*user).to_string(), format!("{}|{}", v.value, k.value)), 0);
                }
            }
        }
    }
    let mut c = OutputCheck::of(records);
    let mut unknown = 0;
    for (k, v) in records {
        match want.get_mut(&(k.clone(), v.clone())) {
            Some(n) => *n += 1,
            None => {
                unknown += 1;
                c.example(|| format!("{k}: {v} is no pair of the input"));
            }
        }
    }
    c.duplicated += unknown;
    let mut pairs: Vec<(&(String, String), &usize)> = want.iter().collect();
    pairs.sort();
    for ((user, pair), n) in pairs {
        match *n {
            0 => c.lose(|| format!("{user}: {pair} missing")),
            1 => {}
            n => c.duplicate(n - 1, || format!("{user}: {pair} {n} times")),
        }
    }
    c
}
