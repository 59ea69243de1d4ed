//! The encoding's version and the limits every task message is checked against.

/// The encoding version, the first byte of every message.
pub const VERSION: u8 = 3;
/// The largest encoded message. Bytes.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// The most messages in one payload.
pub const MAX_BATCH: usize = 512;
/// The most input CIDs a task may name.
pub const MAX_INPUTS: usize = 64;
/// The most parameters a task may carry.
pub const MAX_PARAMS: usize = 32;
/// The longest parameter key or value, idempotency key or program name. Bytes.
pub const MAX_SHORT_TEXT: usize = 1024;
/// The longest free text (an error, a progress note, a hardware description). Bytes.
pub const MAX_TEXT: usize = 4096;
/// The most running attempts a heartbeat may list.
pub const MAX_RUNNING: usize = 1024;
/// The most programs a worker may advertise.
pub const MAX_PROGRAMS: usize = 64;
/// The most tags a node may announce.
pub const MAX_TAGS: usize = 16;
/// The most key figures a report carries.
pub const MAX_FIGURES: usize = 16;
