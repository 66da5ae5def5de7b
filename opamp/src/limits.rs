//! Message size limits.
//!
//! The spec requires both sides to enforce a receive limit on every message
//! (measured after decompression) and recommends 64 MiB as the default for every
//! limit. Oversized WebSocket messages should close the connection with status
//! [`WS_CLOSE_MESSAGE_TOO_BIG`]; oversized HTTP requests are answered with
//! [`HTTP_STATUS_CONTENT_TOO_LARGE`] and not retried.

/// Recommended default for every size limit: 64 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 64 * 1024 * 1024;

/// WebSocket close status for an oversized message ("Message Too Big").
pub const WS_CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// HTTP status for an oversized request body ("Content Too Large").
pub const HTTP_STATUS_CONTENT_TOO_LARGE: u16 = 413;

/// Size limits applied by the decoders in [`crate::ws`] and [`crate::http`].
///
/// ```
/// use rmm_opamp::Limits;
/// let limits = Limits::default().with_max_message_size(1 << 20);
/// assert_eq!(limits.max_message_size, 1 << 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted encoded protobuf message, in bytes, after any
    /// decompression. For HTTP the (possibly compressed) body on the wire is held
    /// to the same limit.
    pub max_message_size: usize,
}

impl Limits {
    /// Limits with the given maximum message size.
    pub const fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }

    /// Returns a copy with `max_message_size` replaced.
    pub const fn with_max_message_size(mut self, max_message_size: usize) -> Self {
        self.max_message_size = max_message_size;
        self
    }
}

impl Default for Limits {
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] (64 MiB).
    fn default() -> Self {
        Self::new(DEFAULT_MAX_MESSAGE_SIZE)
    }
}
