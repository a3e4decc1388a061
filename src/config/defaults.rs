//! What upgrade-guard uses where the file says nothing (pure): the one place each default is
//! written, read by the validation and by the modules that run with them (the tracker).

use std::time::Duration;

/// Server-side watch timeout: each watch is resumed (not relisted) after it.
pub const WATCH_TIMEOUT: Duration = Duration::from_secs(60);

/// Read timeout of the tracker's API connections: a connection with no byte for this long is
/// dead (longer than [`WATCH_TIMEOUT`], or quiet healthy watches would be cut).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);

/// Deadline of one read of a revision's record.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// A newest revision `pending-*` for longer than this is reported as stuck.
pub const STUCK_PENDING_AFTER: Duration = Duration::from_secs(15 * 60);
