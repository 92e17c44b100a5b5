//! Tests of a partition: appends, reads, recovery, retention, compaction, transactions.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

use super::batch::*;
use super::compaction::*;
use super::partition::*;
use super::segment::*;
use super::txn::ProducerId;
use crate::error::StateError;
use crate::log::repair::{repair_partition, verify_partition};

fn rec(i: i64) -> NewRecord {
    NewRecord {
        timestamp: 1_000 + i,
        key: (i % 3 != 0).then(|| format!("k{i}").into_bytes()),
        value: (i % 5 != 0).then(|| vec![b'v'; (i % 40) as usize]),
        headers: if i % 7 == 0 {
            vec![("h".into(), Some(b"x".to_vec())), ("n".into(), None)]
        } else {
            Vec::new()
        },
    }
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        ..LogConfig::default()
    }
}

fn open(dir: &Path, config: LogConfig) -> PartitionLog {
    PartitionLog::open(dir, config).unwrap().0
}

/// A partition in `dir` of `segment_bytes` segments, with `rec(i)` appended for each `i`
/// in `0..n`, one batch each.
fn filled(dir: &Path, segment_bytes: u64, n: i64) -> PartitionLog {
    let mut log = open(dir, config(segment_bytes));
    for i in 0..n {
        assert_eq!(log.append(&[rec(i)]).unwrap(), i);
    }
    log
}

#[test]
fn appends_read_back_across_segments_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(2_000));
    let mut expected = Vec::new();
    for chunk in 0..30 {
        let batch: Vec<NewRecord> = (0..7).map(|j| rec(chunk * 7 + j)).collect();
        let base = log.append(&batch).unwrap();
        assert_eq!(base, chunk * 7);
        expected.extend(batch);
    }
    assert!(log.segment_count() > 2, "segments rolled");
    let check = |log: &PartitionLog| {
        let all = log.read(0, usize::MAX).unwrap();
        assert_eq!(all.len(), expected.len());
        for (i, (got, want)) in all.iter().zip(&expected).enumerate() {
            assert_eq!(got.offset, i as i64);
            assert_eq!(
                (&got.key, &got.value, &got.headers, got.timestamp),
                (&want.key, &want.value, &want.headers, want.timestamp)
            );
        }
        let from = log.read(123, 1).unwrap();
        assert_eq!(from[0].offset, 123, "reads start at the asked offset");
    };
    check(&log);
    log.flush().unwrap();
    drop(log);
    let (log, report) = PartitionLog::open(dir.path(), config(2_000)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.end_offset(), 210);
    check(&log);
}

#[test]
fn a_torn_tail_is_truncated_on_open_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    log.append(&[rec(1), rec(2)]).unwrap();
    log.append(&[rec(3)]).unwrap();
    log.flush().unwrap();
    drop(log);
    let seg = dir.path().join(format!("{:020}.log", 0));
    let len = fs::metadata(&seg).unwrap().len();
    // A partial third batch, as if the process died mid-write.
    let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
    f.write_all(&encode_batch(3, &[rec(4)], None)[..10])
        .unwrap();
    drop(f);
    let (mut log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 10);
    assert_eq!(fs::metadata(&seg).unwrap().len(), len);
    assert_eq!(log.end_offset(), 3);
    assert_eq!(log.append(&[rec(4)]).unwrap(), 3);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 4);
}

#[test]
fn a_write_that_fails_part_way_is_rolled_back_and_no_acknowledged_record_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    log.append(&[rec(0), rec(1)]).unwrap();
    // The disk fills up in the middle of the next batch.
    log.fail_writes_after = Some(7);
    assert!(log.append(&[rec(2), rec(3)]).is_err());
    // Space is freed: the next appends continue where the last whole batch ended.
    log.fail_writes_after = None;
    assert_eq!(log.append(&[rec(2)]).unwrap(), 2);
    assert_eq!(log.append(&[rec(3), rec(4)]).unwrap(), 3);
    log.flush().unwrap();
    drop(log);
    // Every acknowledged record survives a reopen, nothing is cut.
    let (log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    let offsets: Vec<i64> = log
        .read(0, usize::MAX)
        .unwrap()
        .iter()
        .map(|r| r.offset)
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);
}

#[test]
fn damage_before_intact_batches_fails_the_open_and_repair_keeps_every_intact_batch() {
    for closed in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let segment_bytes = if closed { 200 } else { 1 << 20 };
        let log = filled(dir.path(), segment_bytes, 12);
        assert_eq!(log.segment_count() > 1, closed);
        drop(log);
        let seg = dir.path().join(format!("{:020}.log", 0));
        let mut data = fs::read(&seg).unwrap();
        let second = batch_at(&data, 0).unwrap().0;
        data[second + 20] ^= 0xff; // flip a bit inside the second batch (offset 1)
        fs::write(&seg, &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{}", seg.display()))
                && msg.contains(&format!("bytes {second}.."))
                && msg.contains("streams repair"),
            "{msg}"
        );
        assert_eq!(fs::read(&seg).unwrap(), data, "nothing was cut");
        let found = verify_partition(dir.path()).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].first_offset, found[0].resumes_at), (1, Some(2)));
        assert!(!found[0].torn_tail);
        repair_partition(dir.path()).unwrap();
        assert!(
            seg.with_file_name(format!("{:020}.log.damaged", 0))
                .exists()
        );
        assert!(verify_partition(dir.path()).unwrap().is_empty());
        let mut log = open(dir.path(), config(segment_bytes));
        let offsets: Vec<i64> = log
            .read(0, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| r.offset)
            .collect();
        let want: Vec<i64> = (0..12).filter(|o| *o != 1).collect();
        assert_eq!(offsets, want, "every intact batch is kept");
        assert_eq!(log.append(&[rec(99)]).unwrap(), 12, "no offset is reused");
    }
}

/// The offsets and records a partition reads from 0 on (every record).
fn offsets_and_values(log: &PartitionLog) -> Vec<(i64, Option<Vec<u8>>)> {
    log.read(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|r| (r.offset, r.value))
        .collect()
}

/// The fields of the damaged-segment error `err` (panics on any other error).
fn damaged(err: StateError) -> (String, u64, u64, i64) {
    match err {
        StateError::Log(crate::LogError::DamagedSegment {
            file,
            from,
            to,
            offset,
        }) => (file, from, to, offset),
        other => panic!("expected a damaged segment, got {other}"),
    }
}

/// `batch` with the CRC of earlier versions (of the length and payload only).
fn legacy(mut batch: Vec<u8>) -> Vec<u8> {
    let crc = crc32fast::hash(&batch[5..]);
    batch[1..5].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn a_gap_between_segments_fails_the_open_and_repair_covers_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 1, 3);
    assert_eq!(log.segment_count(), 3);
    drop(log);
    let seg1 = segment_file(dir.path(), 1, "log");
    fs::write(&seg1, b"").unwrap();
    let err = PartitionLog::open(dir.path(), config(1)).unwrap_err();
    assert_eq!(damaged(err), (seg1.display().to_string(), 0, 0, 1));
    assert_eq!(fs::metadata(&seg1).unwrap().len(), 0, "nothing was changed");
    let found = verify_partition(dir.path()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0].file,
            found[0].kind,
            found[0].first_offset,
            found[0].resumes_at,
            found[0].torn_tail
        ),
        (
            &seg1,
            crate::log::repair::DamageKind::Gap,
            1,
            Some(2),
            false
        )
    );
    assert_eq!(repair_partition(dir.path()).unwrap(), found);
    assert!(dir.path().join(format!("{:020}.log.damaged", 1)).exists());
    assert!(verify_partition(dir.path()).unwrap().is_empty());
    let (mut log, report) = PartitionLog::open(dir.path(), config(1)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        offsets_and_values(&log),
        vec![(0, rec(0).value), (2, rec(2).value)]
    );
    assert_eq!(log.append(&[rec(3)]).unwrap(), 3, "no offset is reused");
}

#[test]
fn an_overlap_between_segments_fails_the_open_and_repair_keeps_the_earlier_records() {
    // The next segment's first batch copied to the end of the segment before it.
    let dir = tempfile::tempdir().unwrap();
    drop(filled(dir.path(), 1, 3));
    let (seg0, seg1) = (
        segment_file(dir.path(), 0, "log"),
        segment_file(dir.path(), 1, "log"),
    );
    let original = fs::read(&seg0).unwrap();
    let mut data = original.clone();
    data.extend_from_slice(&fs::read(&seg1).unwrap());
    fs::write(&seg0, &data).unwrap();
    let err = PartitionLog::open(dir.path(), config(1)).unwrap_err();
    let (len, total) = (original.len() as u64, data.len() as u64);
    assert_eq!(damaged(err), (seg0.display().to_string(), len, total, 1));
    let found = verify_partition(dir.path()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (
            &found[0].file,
            found[0].kind,
            found[0].from,
            found[0].first_offset
        ),
        (&seg0, crate::log::repair::DamageKind::Overlap, len, 1)
    );
    repair_partition(dir.path()).unwrap();
    assert_eq!(fs::read(seg0.with_extension("log.damaged")).unwrap(), data);
    assert!(seg1.with_extension("log.damaged").exists());
    assert!(!seg1.exists(), "segment 1 held nothing segment 0 does not");
    let mut log = open(dir.path(), config(1));
    let want: Vec<_> = (0..3).map(|i| (i, rec(i).value)).collect();
    assert_eq!(offsets_and_values(&log), want);
    assert_eq!(log.append(&[rec(3)]).unwrap(), 3);

    // A batch reaching into the next segment's second batch: the next segment keeps
    // what comes after the earlier one's end and is renamed after it.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let mut seg0 = encode_batch(0, &[rec(0)], None);
    seg0.extend(encode_batch(1, &[rec(1), rec(2)], None));
    let mut seg1 = encode_batch(1, &[rec(11)], None);
    seg1.extend(encode_batch(2, &[rec(12)], None));
    seg1.extend(encode_batch(3, &[rec(13)], None));
    fs::write(segment_file(p, 0, "log"), &seg0).unwrap();
    fs::write(segment_file(p, 1, "log"), &seg1).unwrap();
    let err = PartitionLog::open(p, config(1 << 20)).unwrap_err();
    let first = encode_batch(0, &[rec(0)], None).len() as u64;
    assert_eq!(
        damaged(err),
        (
            segment_file(p, 0, "log").display().to_string(),
            first,
            seg0.len() as u64,
            1
        )
    );
    repair_partition(p).unwrap();
    assert!(!segment_file(p, 1, "log").exists());
    assert!(segment_file(p, 3, "log").exists());
    let log = open(p, config(1 << 20));
    assert_eq!(
        offsets_and_values(&log),
        vec![
            (0, rec(0).value),
            (1, rec(1).value),
            (2, rec(2).value),
            (3, rec(13).value)
        ]
    );
}

#[test]
fn a_changed_magic_byte_is_damage() {
    // A key of 0x300 bytes: read as magic 3, its length's bytes are an epoch of 0 and
    // the attributes transactional + control (an abort marker readers skip).
    let long_key = NewRecord {
        timestamp: 5,
        key: Some(vec![b'k'; 0x300]),
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    };
    let producer = ProducerId { id: 7, epoch: 0 };
    for (flip_to, transactional) in [(MAGIC_V3, false), (MAGIC_V1, true), (MAGIC_V2, false)] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config(1 << 20));
        log.append(&[rec(0)]).unwrap();
        if transactional {
            log.append_transactional(std::slice::from_ref(&long_key), producer)
                .unwrap();
        } else {
            log.append(std::slice::from_ref(&long_key)).unwrap();
        }
        log.append(&[rec(2)]).unwrap();
        drop(log);
        let seg = segment_file(dir.path(), 0, "log");
        let mut data = fs::read(&seg).unwrap();
        let second = batch_at(&data, 0).unwrap().0;
        data[second] = flip_to;
        fs::write(&seg, &data).unwrap();
        let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
        let (_, from, _, offset) = damaged(err);
        assert_eq!((from, offset), (second as u64, 1), "magic -> {flip_to}");
    }
}

#[test]
fn batches_of_earlier_versions_are_read_but_not_a_legacy_magic_3_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = legacy(encode_batch(0, &[rec(0)], None));
    let kept = LogRecord {
        offset: 2,
        timestamp: 9,
        key: Some(b"k".to_vec()),
        value: Some(b"v".to_vec()),
        headers: Vec::new(),
    };
    data.extend(legacy(encode_compacted_batch(1, 3, &[(kept.clone(), -1)])));
    data.extend(encode_batch(3, &[rec(3)], None));
    fs::write(segment_file(dir.path(), 0, "log"), &data).unwrap();
    let (log, report) = PartitionLog::open(dir.path(), config(1 << 20)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(
        offsets_and_values(&log),
        vec![(0, rec(0).value), (2, kept.value), (3, rec(3).value)]
    );

    let producer = ProducerId { id: 1, epoch: 0 };
    assert_middle_batch_is_damage(legacy(encode_batch(
        1,
        &[rec(1)],
        Some((producer, ATTR_TRANSACTIONAL)),
    )));
}

/// Asserts that a partition of one segment, `rec(0)` at 0, `middle` at 1 and `rec(2)` at 2,
/// fails to open with damage from the byte where `middle` starts.
fn assert_middle_batch_is_damage(middle: Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let mut data = encode_batch(0, &[rec(0)], None);
    let first = data.len() as u64;
    data.extend(middle);
    data.extend(encode_batch(2, &[rec(2)], None));
    fs::write(segment_file(dir.path(), 0, "log"), &data).unwrap();
    let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
    assert_eq!(damaged(err).1, first);
}

#[test]
fn unknown_attribute_bits_of_a_producer_batch_are_damage() {
    let producer = ProducerId { id: 1, epoch: 0 };
    assert_middle_batch_is_damage(encode_batch(
        1,
        &[rec(1)],
        Some((producer, ATTR_TRANSACTIONAL | 0x08)),
    ));
}

#[test]
fn repair_resumes_at_the_smallest_intact_base_after_damage_not_a_stray_copy() {
    // b0 (damaged), a copy of b3, b1, b2, b3.
    let dir = tempfile::tempdir().unwrap();
    let b: Vec<Vec<u8>> = (0..4).map(|i| encode_batch(i, &[rec(i)], None)).collect();
    let mut data = b[0].clone();
    data[20] ^= 0xff;
    data.extend(&b[3]);
    let resume = data.len();
    for batch in &b[1..] {
        data.extend(batch);
    }
    let seg = segment_file(dir.path(), 0, "log");
    fs::write(&seg, &data).unwrap();
    let err = PartitionLog::open(dir.path(), config(1 << 20)).unwrap_err();
    assert_eq!(
        damaged(err),
        (seg.display().to_string(), 0, resume as u64, 0)
    );
    let found = verify_partition(dir.path()).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].from, found[0].to, found[0].resumes_at),
        (0, resume as u64, Some(1))
    );
    repair_partition(dir.path()).unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    let want: Vec<_> = (1..4).map(|i| (i, rec(i).value)).collect();
    assert_eq!(offsets_and_values(&log), want);
    assert_eq!(log.append(&[rec(4)]).unwrap(), 4);
}

#[test]
fn a_partition_of_more_segments_than_open_files_allowed_opens_and_reads() {
    // More segments than the usual limit of 1024 open files per process: only the
    // active segment keeps its file open.
    let dir = tempfile::tempdir().unwrap();
    let log = filled(dir.path(), 1, 1_500);
    assert_eq!(log.segment_count(), 1_500);
    drop(log);
    let open_files = || std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
    let before = open_files();
    let log = open(dir.path(), config(1));
    if let (Some(before), Some(after)) = (before, open_files()) {
        // Other tests run beside this one: a margin, far below 1,500.
        assert!(after < before + 200, "{before} -> {after} open files");
    }
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(all.len(), 1_500);
    assert!(all.iter().enumerate().all(|(i, r)| r.offset == i as i64));
}

#[test]
fn delete_records_and_retention_drop_whole_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = filled(dir.path(), 500, 100);
    let segments = log.segment_count();
    log.delete_records(50).unwrap();
    assert_eq!(log.start_offset(), 50);
    assert!(log.segment_count() < segments);
    assert_eq!(log.read(0, usize::MAX).unwrap()[0].offset, 50);
    drop(log);
    let log = open(dir.path(), config(500));
    assert_eq!(log.start_offset(), 50, "the start offset is durable");
    let mut cfg = config(500);
    cfg.retention_bytes = Some(1_000);
    drop(log);
    let mut log = open(dir.path(), cfg);
    log.append(&[rec(100)]).unwrap();
    let total: u64 = log.segments.values().map(|s| s.size).sum();
    assert!(
        total <= 1_000 + 500,
        "retention keeps the partition near its bound"
    );
    assert!(log.start_offset() > 50);
    assert_eq!(log.end_offset(), 101);
}

/// Records below the start offset stay unreadable when the start offset falls inside a
/// batch (a repartition purge commits mid-batch): every read from below it begins at it,
/// decoded or raw (the server's fetch).
#[test]
fn a_start_offset_inside_a_batch_hides_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(1 << 20));
    for b in 0..3 {
        let batch: Vec<NewRecord> = (0..10).map(|i| rec(b * 10 + i)).collect();
        log.append(&batch).unwrap();
    }
    log.delete_records(15).unwrap();
    let offsets = |records: &[LogRecord]| records.iter().map(|r| r.offset).collect::<Vec<_>>();
    let want: Vec<i64> = (15..30).collect();
    assert_eq!(offsets(&log.read(0, usize::MAX).unwrap()), want);
    let (batches, next) = log
        .read_batches(3, usize::MAX, crate::Isolation::ReadUncommitted)
        .unwrap();
    let read: Vec<LogRecord> = batches.into_iter().flat_map(|b| b.records).collect();
    assert_eq!((offsets(&read), next), (want.clone(), 30));
    // The raw batches hold whole payloads; what they cover starts at the batch of 15.
    let (raw, next) = log
        .read_raw_batches(0, usize::MAX, crate::Isolation::ReadUncommitted)
        .unwrap();
    let bases: Vec<i64> = raw.iter().map(|b| b.batch.base).collect();
    assert_eq!((bases, next), (vec![10, 20], 30));
}

fn keyed(key: &str, value: Option<&str>, timestamp: i64) -> NewRecord {
    NewRecord {
        timestamp,
        key: Some(key.as_bytes().to_vec()),
        value: value.map(|v| v.as_bytes().to_vec()),
        headers: Vec::new(),
    }
}

/// Kafka's ListOffsets by time over what was appended: the first batch whose largest
/// timestamp reaches `t`, and in it the first record that does.
fn oracle_offset_for_time(batches: &[(i64, Vec<i64>)], t: i64, start: i64) -> Option<i64> {
    for (base, stamps) in batches {
        let in_range: Vec<(i64, i64)> = stamps
            .iter()
            .enumerate()
            .map(|(i, ts)| (base + i as i64, *ts))
            .filter(|(o, _)| *o >= start)
            .collect();
        if stamps.iter().max().is_some_and(|m| *m >= t)
            && let Some((o, _)) = in_range.iter().find(|(_, ts)| *ts >= t)
        {
            return Some(*o);
        }
    }
    None
}

#[test]
fn offset_for_time_finds_the_first_record_at_or_after_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(20_000);
    let mut log = open(dir.path(), cfg);
    // Mostly increasing timestamps with some out of order, in batches of 1-4 records
    // of ~100 bytes: several segments, several time index entries per segment.
    let mut batches = Vec::new();
    let mut x: u64 = 7;
    for b in 0..600i64 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let n = (x >> 33) % 4 + 1;
        let stamps: Vec<i64> = (0..n as i64)
            .map(|j| b * 10 + j - if (x >> 40).is_multiple_of(5) { 35 } else { 0 })
            .collect();
        let records: Vec<NewRecord> = stamps
            .iter()
            .map(|ts| NewRecord {
                timestamp: *ts,
                value: Some(vec![b'x'; 100]),
                ..NewRecord::default()
            })
            .collect();
        let base = log.append(&records).unwrap();
        batches.push((base, stamps));
    }
    assert!(log.segment_count() >= 3, "{} segments", log.segment_count());
    assert!(log.segments.values().any(|s| s.time_index.len() > 2));
    let check = |log: &PartitionLog, start: i64| {
        for t in (-50..6_100).step_by(7) {
            assert_eq!(
                log.offset_for_time(t).unwrap(),
                oracle_offset_for_time(&batches, t, start),
                "timestamp {t}"
            );
        }
        assert_eq!(log.offset_for_time(1_000_000).unwrap(), None);
    };
    check(&log, 0);
    // The record found really has a timestamp at or after the one asked for.
    let found = log.offset_for_time(3_000).unwrap().unwrap();
    assert!(log.read(found, 1).unwrap()[0].timestamp >= 3_000);
    log.delete_records(700).unwrap();
    check(&log, 700);
    drop(log);
    let log = open(dir.path(), cfg);
    check(&log, 700);
    assert!(log.segments.values().all(|s| s.time_index_path.exists()));
}

#[test]
fn time_retention_deletes_whole_expired_segments_rolled_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        segment_ms: Some(1_000),
        retention_ms: Some(5_000),
        ..config(1 << 20)
    };
    let mut log = open(dir.path(), cfg);
    for i in 0..100 {
        log.append(&[NewRecord {
            timestamp: i * 100,
            value: Some(vec![1]),
            ..NewRecord::default()
        }])
        .unwrap();
    }
    // Rolled once a batch was 1s newer than the segment's first: 10 segments of 1s.
    assert_eq!(log.segment_count(), 10);
    assert_eq!(
        log.enforce_time_retention(4_900).unwrap(),
        0,
        "nothing is 5s old"
    );
    // Now 12s: records before 7s are expired; segments [0s,1s) .. [6s,7s) go.
    assert_eq!(log.enforce_time_retention(12_000).unwrap(), 7);
    assert_eq!(log.start_offset(), 70);
    let left = log.read(0, usize::MAX).unwrap();
    assert_eq!(left.len(), 30);
    assert_eq!(left[0].timestamp, 7_000);
    drop(log);
    let mut log = open(dir.path(), cfg);
    assert_eq!((log.start_offset(), log.end_offset()), (70, 100));
    // Everything expired, the active segment too: it is rolled and deleted, the end
    // offset stays and appends continue from it.
    assert_eq!(log.enforce_time_retention(100_000).unwrap(), 3);
    assert_eq!((log.start_offset(), log.end_offset()), (100, 100));
    assert!(log.read(0, usize::MAX).unwrap().is_empty());
    assert_eq!(log.enforce_time_retention(100_000).unwrap(), 0);
    assert_eq!(log.append(&[rec(5)]).unwrap(), 100);
    assert_eq!(log.read(0, usize::MAX).unwrap()[0].offset, 100);
    // Without retention.ms nothing goes.
    drop(log);
    let mut log = open(dir.path(), config(1 << 20));
    assert_eq!(log.enforce_time_retention(i64::MAX).unwrap(), 0);
    assert_eq!(log.read(0, usize::MAX).unwrap().len(), 1);
}

/// 400 records over 5 hot and ~100 cold keys in ~1KB segments; every 7th record is a
/// tombstone.
fn compactable(dir: &Path) -> (PartitionLog, Vec<NewRecord>) {
    let mut log = open(dir, config(1_000));
    let mut appended = Vec::new();
    for i in 0..400i64 {
        let key = if i % 3 == 0 {
            format!("hot-{}", i % 5)
        } else {
            format!("cold-{}", i % 150)
        };
        let value = format!("value-{i}");
        let r = keyed(&key, (i % 7 != 3).then_some(value.as_str()), i);
        log.append(std::slice::from_ref(&r)).unwrap();
        appended.push(r);
    }
    (log, appended)
}

/// What a compacted log must still tell: the latest value of every key, at its original
/// offset, with no record anywhere that differs from what was appended there.
fn assert_consistent(log: &PartitionLog, appended: &[NewRecord]) {
    let all = log.read(0, usize::MAX).unwrap();
    assert_eq!(log.end_offset(), appended.len() as i64);
    let mut last = -1;
    for r in &all {
        assert!(r.offset > last, "offsets increase, no duplicates");
        last = r.offset;
        let a = &appended[r.offset as usize];
        assert_eq!(
            (&r.key, &r.value, r.timestamp),
            (&a.key, &a.value, a.timestamp)
        );
    }
    let mut want: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for a in appended {
        want.insert(a.key.clone().unwrap(), a.value.clone());
    }
    let mut got: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
    for r in &all {
        got.insert(r.key.clone().unwrap(), r.value.clone());
    }
    // Keys whose latest record is a tombstone may be gone entirely.
    want.retain(|k, v| v.is_some() || got.contains_key(k));
    assert_eq!(got, want);
}

/// A raw read (the server's fetch) with a tiny budget makes progress from every offset of
/// a compacted log, as the decoded read does: a batch whose records all lie before the
/// offset (a trailing gap) costs nothing and is not returned.
#[test]
fn raw_reads_of_a_compacted_log_reach_the_next_record_from_every_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, _) = compactable(dir.path());
    log.compact(10_000, 1_000_000).unwrap();
    for from in 0..log.end_offset() {
        let want = log.read(from, 1).unwrap().first().map(|r| r.offset);
        let (raw, _) = log
            .read_raw_batches(from, 1, crate::Isolation::ReadUncommitted)
            .unwrap();
        let mut got = None;
        for b in &raw {
            if let Some((magic, payload)) = &b.payload {
                decode_batch_views(*magic, payload, |r, _| {
                    if r.offset >= from && got.is_none() {
                        got = Some(r.offset);
                    }
                })
                .unwrap();
            }
        }
        assert_eq!(got, want, "from {from}");
    }
}

#[test]
fn compaction_keeps_the_latest_record_per_key_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, appended) = compactable(dir.path());
    let before = log.segment_count();
    assert!(before > 10);
    let active_base = *log.segments.keys().next_back().unwrap();
    let mut latest = HashMap::new();
    for (i, a) in appended.iter().enumerate() {
        latest.insert(a.key.clone(), i as i64);
    }
    let superseded = (0..active_base)
        .filter(|o| latest[&appended[*o as usize].key] != *o)
        .count() as u64;
    let report = log.compact(10_000, 1_000_000).unwrap();
    assert_eq!(report.records_removed, superseded, "{report:?}");
    assert!(
        log.segment_count() < before / 2,
        "cleaned segments are merged"
    );
    assert_consistent(&log, &appended);
    let all = log.read(0, usize::MAX).unwrap();
    let mut seen = std::collections::HashSet::new();
    for r in all.iter().filter(|r| r.offset < active_base) {
        assert!(
            seen.insert(r.key.clone()),
            "one record per key in closed segments"
        );
    }
    // Reads from inside a gap continue at the next kept record.
    let gap = (1..all.len())
        .find(|i| all[*i].offset > all[*i - 1].offset + 1)
        .unwrap();
    let from = all[gap - 1].offset + 1;
    assert_eq!(log.read(from, 1).unwrap()[0].offset, all[gap].offset);
    // A second pass with nothing new does nothing.
    assert_eq!(
        log.compact(10_000, 1_000_000).unwrap(),
        CompactionReport::default()
    );
    drop(log);
    let (mut log, report) = PartitionLog::open(dir.path(), config(1_000)).unwrap();
    assert_eq!(report.truncated_bytes, 0);
    assert_eq!(log.read(0, usize::MAX).unwrap(), all);
    assert_eq!(
        log.append(&[keyed("hot-1", Some("new"), 500)]).unwrap(),
        400
    );
}

#[test]
fn tombstones_stay_for_delete_retention_after_their_first_compaction() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(200));
    log.append(&[keyed("gone", Some("v1"), 1)]).unwrap();
    log.append(&[keyed("kept", Some("v"), 1)]).unwrap();
    log.append(&[keyed("gone", None, 1)]).unwrap();
    for _ in 0..10 {
        log.append(&[keyed("other", Some("x"), 1)]).unwrap();
    }
    let keys = |log: &PartitionLog| -> Vec<(i64, String, bool)> {
        log.read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|r| r.key.as_deref() != Some(b"other".as_slice()))
            .map(|r| {
                (
                    r.offset,
                    String::from_utf8(r.key.unwrap()).unwrap(),
                    r.value.is_some(),
                )
            })
            .collect()
    };
    log.compact(1_000, 500).unwrap();
    let with_tombstone = vec![
        (1, "kept".to_string(), true),
        (2, "gone".to_string(), false),
    ];
    assert_eq!(
        keys(&log),
        with_tombstone,
        "the old value goes, the tombstone stays"
    );
    log.compact(1_499, 500).unwrap();
    assert_eq!(keys(&log), with_tombstone);
    drop(log);
    // The horizon (1_000 + 500) is stored: reopening does not restart the clock.
    let mut log = open(dir.path(), config(200));
    log.compact(1_499, 500).unwrap();
    assert_eq!(keys(&log), with_tombstone);
    let report = log.compact(1_500, 500).unwrap();
    assert!(report.records_removed >= 1);
    assert_eq!(keys(&log), vec![(1, "kept".to_string(), true)]);
    assert_eq!(log.end_offset(), 13);
}

#[test]
fn a_crash_during_compaction_loses_and_duplicates_nothing() {
    let reference = tempfile::tempdir().unwrap();
    let (mut log, _) = compactable(reference.path());
    log.compact(10_000, 1_000_000).unwrap();
    let compacted = log.read(0, usize::MAX).unwrap();
    drop(log);
    for step in [
        CompactStep::Cleaned,
        CompactStep::Swap,
        CompactStep::FirstOldDeleted,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, appended) = compactable(dir.path());
        let original = log.read(0, usize::MAX).unwrap();
        log.compact_with(10_000, 1_000_000, &mut |s| s != step)
            .unwrap();
        drop(log); // the crash
        let leftovers = |ext: &str| {
            fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(ext)
                })
                .count()
        };
        assert_eq!(
            leftovers(if step == CompactStep::Cleaned {
                ".cleaned"
            } else {
                ".swap"
            }),
            1,
            "{step:?}"
        );
        let mut log = open(dir.path(), config(1_000));
        assert_eq!(leftovers(".cleaned") + leftovers(".swap"), 0, "{step:?}");
        assert_consistent(&log, &appended);
        let now = log.read(0, usize::MAX).unwrap();
        if step == CompactStep::Cleaned {
            assert_eq!(now, original, "an unfinished rewrite is discarded");
        } else {
            assert!(
                now.len() < original.len(),
                "a complete rewrite is installed"
            );
        }
        log.compact(10_000, 1_000_000).unwrap();
        assert_eq!(log.read(0, usize::MAX).unwrap(), compacted, "{step:?}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Whatever the batch sizes, segment size and reopen points, reading from any offset
    /// returns exactly the appended records from there on.
    #[test]
    fn reads_match_what_was_appended(
        batches in proptest::collection::vec((1usize..6, proptest::prelude::any::<bool>()), 1..25),
        segment_bytes in 100u64..3_000,
        from in 0i64..80,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config(segment_bytes));
        let mut all = Vec::new();
        for (n, reopen) in batches {
            let batch: Vec<NewRecord> = (0..n).map(|j| rec(all.len() as i64 + j as i64)).collect();
            proptest::prop_assert_eq!(log.append(&batch).unwrap(), all.len() as i64);
            all.extend(batch);
            if reopen {
                drop(log);
                log = PartitionLog::open(dir.path(), config(segment_bytes)).unwrap().0;
            }
        }
        let got = log.read(from, usize::MAX).unwrap();
        let want: Vec<_> = all.iter().enumerate().skip(from as usize).collect();
        proptest::prop_assert_eq!(got.len(), want.len());
        for (g, (i, w)) in got.iter().zip(want) {
            proptest::prop_assert_eq!(g.offset, i as i64);
            proptest::prop_assert_eq!(&g.value, &w.value);
        }
    }
}
