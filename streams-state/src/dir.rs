//! The state directory: `<state.dir>/<application.id>/<task id>/...`, locked so that two
//! instances cannot share it.
//!
//! The application directory holds a `.metadata` file (format version and application id)
//! and a `.lock` file held with an exclusive OS file lock while the directory is in use.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use crate::StateError;

/// The on-disk format version of state directories written by this build.
pub const STATE_DIR_VERSION: u32 = 1;

/// An application's locked state directory.
#[derive(Debug)]
pub struct StateDirectory {
    app_dir: PathBuf,
    // Held for the directory's lifetime: the OS releases the lock when it is closed, also
    // when the process dies.
    _lock: File,
}

fn err(path: &Path, detail: impl Into<String>) -> StateError {
    StateError::StateDir {
        path: path.to_path_buf(),
        detail: detail.into(),
    }
}

fn io_detail(e: &std::io::Error, what: &str) -> String {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        format!(
            "{what}: permission denied (check the owner and mode of the directory, or set state.dir elsewhere)"
        )
    } else {
        format!("{what}: {e}")
    }
}

impl StateDirectory {
    /// Opens (creating if needed) and locks `<root>/<application_id>`.
    ///
    /// Fails with a clear error when another process (or another instance in this process)
    /// holds the directory, when it belongs to another application id, when it was written
    /// by an incompatible format version, or when it cannot be created or written.
    pub fn open(root: &Path, application_id: &str) -> Result<Self, StateError> {
        let app_dir = root.join(application_id);
        fs::create_dir_all(&app_dir)
            .map_err(|e| err(&app_dir, io_detail(&e, "cannot create the state directory")))?;
        let lock_path = app_dir.join(".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| err(&app_dir, io_detail(&e, "cannot open the lock file")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(err(
                    &app_dir,
                    format!(
                        "already in use by another instance of `{application_id}` (each instance needs its own state.dir)"
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(err(&app_dir, io_detail(&e, "cannot lock"))),
        }
        let meta_path = app_dir.join(".metadata");
        match fs::read_to_string(&meta_path) {
            Ok(text) => {
                let mut version = None;
                let mut app = None;
                for line in text.lines() {
                    if let Some(v) = line.strip_prefix("version=") {
                        version = v.trim().parse::<u32>().ok();
                    } else if let Some(a) = line.strip_prefix("application.id=") {
                        app = Some(a.trim().to_string());
                    }
                }
                match app {
                    Some(a) if a == application_id => {}
                    Some(a) => {
                        return Err(err(
                            &app_dir,
                            format!(
                                "belongs to application `{a}`, not `{application_id}`; use another state.dir or remove it"
                            ),
                        ));
                    }
                    None => {
                        return Err(err(
                            &app_dir,
                            "has an unreadable .metadata file; remove the directory to start over",
                        ));
                    }
                }
                match version {
                    Some(STATE_DIR_VERSION) => {}
                    Some(v) => {
                        return Err(err(
                            &app_dir,
                            format!(
                                "was written by state format version {v}, this build reads version {STATE_DIR_VERSION}; reset the application's state (it is rebuilt from the changelogs)"
                            ),
                        ));
                    }
                    None => return Err(err(&app_dir, "has a .metadata file without a version")),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fs::write(
                    &meta_path,
                    format!("version={STATE_DIR_VERSION}\napplication.id={application_id}\n"),
                )
                .map_err(|e| err(&app_dir, io_detail(&e, "cannot write .metadata")))?;
            }
            Err(e) => return Err(err(&app_dir, io_detail(&e, "cannot read .metadata"))),
        }
        Ok(Self {
            app_dir,
            _lock: lock,
        })
    }

    /// The application's directory.
    pub fn app_dir(&self) -> &Path {
        &self.app_dir
    }

    /// The directory of task `task_id` (e.g. `0_3`), created if needed.
    pub fn task_dir(&self, task_id: &str) -> Result<PathBuf, StateError> {
        let dir = self.app_dir.join(task_id);
        fs::create_dir_all(&dir)
            .map_err(|e| err(&dir, io_detail(&e, "cannot create the task directory")))?;
        Ok(dir)
    }

    /// Removes the task's directory (its stores are rebuilt from the changelogs).
    pub fn wipe_task(&self, task_id: &str) -> Result<(), StateError> {
        let dir = self.app_dir.join(task_id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(err(&dir, io_detail(&e, "cannot remove"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_instance_is_refused_until_the_first_closes() {
        let root = tempfile::tempdir().unwrap();
        let a = StateDirectory::open(root.path(), "app").unwrap();
        let e = StateDirectory::open(root.path(), "app").unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        drop(a);
        StateDirectory::open(root.path(), "app").unwrap();
    }

    #[test]
    fn foreign_or_newer_directories_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("app");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(".metadata"), "version=1\napplication.id=other\n").unwrap();
        let e = StateDirectory::open(root.path(), "app").unwrap_err();
        assert!(
            e.to_string().contains("belongs to application `other`"),
            "{e}"
        );
        fs::write(dir.join(".metadata"), "version=9\napplication.id=app\n").unwrap();
        let e = StateDirectory::open(root.path(), "app").unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
    }

    #[test]
    fn unwritable_root_gives_a_permission_error() {
        let root = tempfile::tempdir().unwrap();
        if nix_is_root() {
            // Root ignores permission bits: check the other unusable-root case instead.
            let file = root.path().join("not-a-dir");
            fs::write(&file, b"x").unwrap();
            let e = StateDirectory::open(&file, "app").unwrap_err();
            assert!(
                e.to_string().contains("cannot create the state directory"),
                "{e}"
            );
            return;
        }
        let ro = root.path().join("ro");
        fs::create_dir(&ro).unwrap();
        let mut perm = fs::metadata(&ro).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o500);
        fs::set_permissions(&ro, perm).unwrap();
        let e = StateDirectory::open(&ro, "app").unwrap_err();
        assert!(e.to_string().contains("permission denied"), "{e}");
    }

    fn nix_is_root() -> bool {
        fs::read_to_string("/proc/self/status")
            .map(|s| {
                s.lines()
                    .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
            })
            .unwrap_or(false)
    }
}
