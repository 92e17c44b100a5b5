//! Small file helpers of the log engine: atomic rewrites and checksummed settings files.

use std::fs::{self, File};
use std::path::Path;

use crate::error::StateError;

/// Maps an I/O error of `action` on `path` to a [`StateError`] (a full disk is
/// [`StateError::DiskFull`]).
pub(super) fn io<'a>(
    path: &'a Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> StateError + 'a {
    move |source| StateError::io(path, action, source)
}

/// Damage found in `path`, described by `detail`.
pub(super) fn corrupt(path: &Path, detail: impl Into<String>) -> StateError {
    StateError::Corrupt {
        store: path.display().to_string(),
        detail: detail.into(),
    }
}

/// Writes `path` atomically: a synced temporary file renamed over it.
pub(super) fn write_atomic(
    path: &Path,
    text: &str,
    action: &'static str,
) -> Result<(), StateError> {
    write_atomic_with(path, text, action, true)
}

/// Writes `path` atomically (a temporary file renamed over it); `sync`: durably (the file
/// and its directory synced), else only as far as a process crash is concerned.
pub(super) fn write_atomic_with(
    path: &Path,
    text: &str,
    action: &'static str,
    sync: bool,
) -> Result<(), StateError> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).map_err(io(&tmp, action))?;
        std::io::Write::write_all(&mut f, text.as_bytes()).map_err(io(&tmp, action))?;
        if sync {
            f.sync_all().map_err(io(&tmp, action))?;
        }
    }
    fs::rename(&tmp, path).map_err(io(path, action))?;
    if sync
        && let Some(parent) = path.parent()
        && let Ok(d) = File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// `text` preceded by a line `crc32=<hex>` of its CRC-32, so that any change to a settings
/// file is detected ([`checked_text`]).
pub(super) fn with_checksum(text: &str) -> String {
    format!("crc32={:08x}\n{text}", crc32fast::hash(text.as_bytes()))
}

/// The body of a file written by [`with_checksum`]: `Err` when the checksum does not
/// match; a file without the checksum line (written by an earlier version) as it is.
pub(super) fn checked_text(text: &str) -> Result<&str, String> {
    let Some(rest) = text.strip_prefix("crc32=") else {
        return Ok(text);
    };
    let (crc, body) = rest
        .split_once('\n')
        .ok_or_else(|| "its checksum line is cut".to_string())?;
    match u32::from_str_radix(crc, 16) {
        Ok(crc) if crc == crc32fast::hash(body.as_bytes()) && rest.len() == 9 + body.len() => {
            Ok(body)
        }
        _ => Err("its checksum does not match its contents".to_string()),
    }
}
