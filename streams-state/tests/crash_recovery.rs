//! Crash safety: a child process writes to a logged RocksDB store (changelog in a file,
//! checkpoint on commit) and is killed with SIGKILL mid-write; recovery (checkpoint plus the
//! changelog's tail) yields exactly the state the changelog describes.

// Test helpers outside #[test] functions may unwrap too: a panic fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use streams_state::{
    ChangelogPartition, ChangelogRecord, ChangelogSink, Checkpoint, CheckpointRead, KeyValueStore,
    LoggingKeyValueStore, NoopRestoreListener, RocksDbKeyValueStore, RocksDbResources, StateError,
    StateStore, restore_store,
};

const CHILD_ENV: &str = "STREAMS_CRASH_CHILD_DIR";

/// An append-only changelog file: `[u32 len][payload][u32 crc32(payload)]` per record, with
/// payload `[key len u32][key][has value u8][value]`. Offsets are record positions.
struct FileLog {
    file: File,
    next_offset: i64,
}

impl FileLog {
    fn open(path: &Path) -> (Self, Vec<ChangelogRecord>) {
        let records = read_log(path);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        let next_offset = records.len() as i64;
        (Self { file, next_offset }, records)
    }
}

/// Reads every whole record and truncates a torn tail.
fn read_log(path: &Path) -> Vec<ChangelogRecord> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        f.read_to_end(&mut bytes).unwrap();
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        if pos + 8 + len > bytes.len() {
            break;
        }
        let payload = &bytes[pos + 4..pos + 4 + len];
        let crc = u32::from_be_bytes(bytes[pos + 4 + len..pos + 8 + len].try_into().unwrap());
        if crc32fast::hash(payload) != crc {
            break;
        }
        let klen = u32::from_be_bytes(payload[0..4].try_into().unwrap()) as usize;
        let key = payload[4..4 + klen].to_vec();
        let value = (payload[4 + klen] == 1).then(|| payload[5 + klen..].to_vec());
        out.push(ChangelogRecord {
            offset: out.len() as i64,
            key,
            value,
        });
        pos += 8 + len;
    }
    if pos < bytes.len() {
        let f = OpenOptions::new().write(true).open(path).unwrap();
        f.set_len(pos as u64).unwrap();
    }
    out
}

struct SharedSink(Arc<Mutex<FileLog>>);

impl ChangelogSink for SharedSink {
    fn send(&mut self, key: &[u8], value: Option<&[u8]>) -> Result<(), StateError> {
        let mut payload = Vec::with_capacity(key.len() + 16);
        payload.extend_from_slice(&(key.len() as u32).to_be_bytes());
        payload.extend_from_slice(key);
        payload.push(u8::from(value.is_some()));
        payload.extend_from_slice(value.unwrap_or_default());
        let mut rec = Vec::with_capacity(payload.len() + 8);
        rec.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        rec.extend_from_slice(&payload);
        rec.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        let mut log = self.0.lock().unwrap();
        // One write per record: after a SIGKILL the kernel still holds it.
        log.file.write_all(&rec).map_err(|source| StateError::Io {
            store: "s".into(),
            action: "changelog append",
            source,
        })?;
        log.next_offset += 1;
        Ok(())
    }
}

fn partition() -> ChangelogPartition {
    ChangelogPartition {
        topic: "app-s-changelog".into(),
        partition: 0,
    }
}

fn paths(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let task = dir.join("0_0");
    (
        task.join("rocksdb").join("s"),
        dir.join("changelog.log"),
        task.join(Checkpoint::FILE_NAME),
    )
}

/// The child: writes forever, committing every 300 writes. Runs only when spawned by the
/// parent test (the environment variable names its directory).
#[test]
fn crash_child_writer() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let (store_dir, log_path, cp_path) = paths(&dir);
    std::fs::create_dir_all(store_dir.parent().unwrap()).unwrap();
    let (log, _) = FileLog::open(&log_path);
    let log = Arc::new(Mutex::new(log));
    let resources = RocksDbResources::with_budget(16 << 20);
    let engine = RocksDbKeyValueStore::open("s", &store_dir, &resources).unwrap();
    let mut store = LoggingKeyValueStore::new(Box::new(engine), Box::new(SharedSink(log.clone())));
    let mut seed = std::process::id() as u64;
    let mut announced = false;
    for i in 0u64.. {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let key = format!("k{}", (seed >> 33) % 2000);
        if (seed >> 20).is_multiple_of(10) {
            store.delete(key.as_bytes()).unwrap();
        } else {
            store
                .put(
                    key.as_bytes(),
                    format!("v{i}-{}", "x".repeat(64)).as_bytes(),
                )
                .unwrap();
        }
        if i % 300 == 299 {
            // Commit: engine flush, changelog durable, then the checkpoint.
            store.flush().unwrap();
            let next = {
                let l = log.lock().unwrap();
                l.file.sync_all().unwrap();
                l.next_offset
            };
            let mut cp = Checkpoint::default();
            cp.offsets.insert(partition(), next);
            cp.write(&cp_path).unwrap();
            if !announced {
                println!("committed");
                std::io::stdout().flush().unwrap();
                announced = true;
            }
        }
    }
}

fn recover_and_check(dir: &Path, corrupt_checkpoint: bool) -> (u64, usize) {
    let (store_dir, log_path, cp_path) = paths(dir);
    let records = read_log(&log_path);
    if corrupt_checkpoint {
        std::fs::write(&cp_path, b"streams-checkpoint 1 deadbeef\ngarbage\n").unwrap();
    }
    let start = match Checkpoint::read(&cp_path) {
        CheckpointRead::Valid(cp) => *cp.offsets.get(&partition()).unwrap_or(&0),
        CheckpointRead::Missing => 0,
        CheckpointRead::Corrupt(_) => {
            // A damaged checkpoint means a full restore into a fresh store.
            std::fs::remove_dir_all(&store_dir).unwrap();
            0
        }
    };
    let resources = RocksDbResources::with_budget(16 << 20);
    let mut store = RocksDbKeyValueStore::open("s", &store_dir, &resources).unwrap();
    let end = records.len() as i64;
    let summary = restore_store(
        &mut store,
        records.iter().cloned().map(Ok),
        start,
        end,
        1000,
        &NoopRestoreListener,
    )
    .unwrap();
    assert_eq!(summary.next_offset, end.max(start));
    let mut model = BTreeMap::new();
    for r in &records {
        match &r.value {
            Some(v) => {
                model.insert(r.key.clone(), v.clone());
            }
            None => {
                model.remove(&r.key);
            }
        }
    }
    let got: BTreeMap<Vec<u8>, Vec<u8>> = store.all().unwrap().map(Result::unwrap).collect();
    assert_eq!(got.len(), model.len());
    assert!(
        got == model,
        "store differs from the changelog after recovery"
    );
    let mut cp = Checkpoint::default();
    cp.offsets.insert(partition(), end);
    store.flush().unwrap();
    cp.write(&cp_path).unwrap();
    store.close().unwrap();
    (summary.restored, records.len())
}

#[test]
fn kill_dash_nine_mid_write_recovers_from_checkpoint_and_changelog() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    for trial in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child_writer",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait for the first commit, then let it write a while before the kill.
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        while !line.contains("committed") {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("child exited early");
            }
        }
        std::thread::sleep(Duration::from_millis(150 + 200 * trial));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let (restored, total) = recover_and_check(dir.path(), trial == 2);
        println!("trial {trial}: changelog {total} records, restored {restored}");
        assert!(total > 300);
    }
}
