//! Every bound of the web interface, in one place (the log's own limits
//! are in `engine::limits`).

use std::time::Duration;

/// Largest request body accepted (forms and JSON). An event is at most
/// 64 KiB encoded; a form is smaller still.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;
/// Sessions held at once, over all users; a login beyond it is refused.
pub const SESSIONS_MAX: usize = 1024;
/// Sessions per user; a new login ends that user's oldest session.
pub const SESSIONS_PER_USER_MAX: usize = 8;
/// A session unused this long has ended.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after login whatever its use.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Failed logins for one login name within `LOGIN_WINDOW` before further
/// attempts on it are refused until the window has passed.
pub const LOGIN_FAILURES_PER_NAME_MAX: usize = 5;
/// Failed logins from one client address within `LOGIN_WINDOW`.
pub const LOGIN_FAILURES_PER_ADDRESS_MAX: usize = 20;
pub const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Login names and addresses whose failures are remembered; beyond it,
/// logins are refused until old failures expire (fail closed).
pub const LOGIN_TRACKED_KEYS_MAX: usize = 10_000;
/// Password checks running at once (argon2 is deliberately costly).
pub const PASSWORD_CHECKS_CONCURRENT_MAX: usize = 2;
/// Shortest password `styrlogg user add` accepts, in characters.
pub const PASSWORD_CHARS_MIN: usize = 10;
/// Longest password, in bytes.
pub const PASSWORD_BYTES_MAX: usize = 1024;
/// Live-update streams (server-sent events) open at once.
pub const LIVE_STREAMS_MAX: usize = 256;
/// How long a write waits for the live view to show what it wrote.
pub const READ_YOUR_WRITE_WAIT: Duration = Duration::from_secs(5);
/// Users and tokens in the users file.
pub const USERS_MAX: usize = 10_000;
/// Facts a form may carry (the log's own limit is 64 per event).
pub const FORM_FIELDS_MAX: usize = 256;
