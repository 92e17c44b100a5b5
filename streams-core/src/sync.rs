//! Locking helpers shared by the runtime and the clients (a leaf module: it imports nothing
//! of the crate).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, going on with the data when another thread panicked while holding it: every
/// value kept under these locks stays consistent between statements, and a panicking
/// stream thread is reported on its own.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
