//! The locking helper of the crate's shared state (a leaf module: it imports nothing of the
//! crate).

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, going on with the data when another thread panicked while holding it: every
/// value kept under these locks (engine topics, group offsets, the transaction coordinator,
/// the server's producers, groups and transactions) stays consistent between statements.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
