//! WebSocket framing.
//!
//! Every OpAMP WebSocket *binary* message is `header ‖ data`:
//!
//! * `header`: an unsigned 64-bit integer as a protobuf base-128 varint. In this
//!   spec version its value is always 0, i.e. the single byte `0x00`. Any other
//!   value is reserved and rejected here as malformed ([`FrameError::NonZeroHeader`]).
//! * `data`: the protobuf-encoded message (`AgentToServer` from the client,
//!   `ServerToAgent` from the server). Zero bytes is valid (an all-default message).
//!
//! Bare protobuf frames from pre-v0.7 peers are *not* accepted.
//!
//! ```
//! use rmm_opamp::{ws, proto::AgentToServer, Limits};
//! let msg = AgentToServer { sequence_num: 7, capabilities: 1, ..Default::default() };
//! let frame = ws::encode(&msg);
//! assert_eq!(frame[0], 0x00);
//! let back: AgentToServer = ws::decode(&frame, &Limits::default()).unwrap();
//! assert_eq!(back, msg);
//! ```

use prost::Message;

use crate::limits::Limits;
use crate::proto::{AgentToServer, ServerToAgent};

/// The header value of this spec version.
pub const HEADER: u64 = 0;

/// Why a WebSocket frame could not be decoded (or encoded).
///
/// Every variant means "malformed message": the receiver should end the session
/// with a logged reason; [`FrameError::TooLarge`] should close with status
/// [`WS_CLOSE_MESSAGE_TOO_BIG`](crate::limits::WS_CLOSE_MESSAGE_TOO_BIG) (1009).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame has no bytes at all, so not even a header.
    #[error("empty WebSocket frame: missing OpAMP header")]
    Empty,
    /// The header is not a valid varint (truncated or longer than 10 bytes).
    #[error("invalid OpAMP frame header varint")]
    InvalidHeader,
    /// The header decoded to a reserved, non-zero value.
    #[error("unsupported OpAMP frame header value {0} (expected 0)")]
    NonZeroHeader(u64),
    /// The message exceeds the configured size limit.
    #[error("OpAMP message of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the protobuf message in bytes.
        size: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The protobuf payload could not be decoded.
    #[error("invalid OpAMP protobuf payload: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

impl FrameError {
    /// The WebSocket close status the receiver should use: 1009 for
    /// [`FrameError::TooLarge`], 1002 (protocol error) otherwise.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooLarge { .. } => crate::limits::WS_CLOSE_MESSAGE_TOO_BIG,
            _ => 1002,
        }
    }
}

/// Encodes `msg` as one WebSocket binary message: header `0x00` + protobuf.
pub fn encode<M: Message>(msg: &M) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + msg.encoded_len());
    prost::encoding::encode_varint(HEADER, &mut buf);
    msg.encode_raw(&mut buf);
    buf
}

/// Like [`encode`], but refuses to produce a message larger than
/// `limits.max_message_size` (the spec says: do not send it, record the drop).
pub fn encode_with_limit<M: Message>(msg: &M, limits: &Limits) -> Result<Vec<u8>, FrameError> {
    let size = msg.encoded_len();
    if size > limits.max_message_size {
        return Err(FrameError::TooLarge {
            size,
            limit: limits.max_message_size,
        });
    }
    Ok(encode(msg))
}

/// Splits a frame into its header value and protobuf payload, enforcing the
/// header rules and the size limit, without decoding the payload.
pub fn split<'a>(frame: &'a [u8], limits: &Limits) -> Result<&'a [u8], FrameError> {
    if frame.is_empty() {
        return Err(FrameError::Empty);
    }
    let mut rest = frame;
    let header =
        prost::encoding::decode_varint(&mut rest).map_err(|_| FrameError::InvalidHeader)?;
    if header != HEADER {
        return Err(FrameError::NonZeroHeader(header));
    }
    if rest.len() > limits.max_message_size {
        return Err(FrameError::TooLarge {
            size: rest.len(),
            limit: limits.max_message_size,
        });
    }
    Ok(rest)
}

/// Decodes one WebSocket binary message into `M`.
pub fn decode<M: Message + Default>(frame: &[u8], limits: &Limits) -> Result<M, FrameError> {
    let data = split(frame, limits)?;
    Ok(M::decode(data)?)
}

/// Decodes a frame sent by an agent (server side).
pub fn decode_agent_to_server(frame: &[u8], limits: &Limits) -> Result<AgentToServer, FrameError> {
    decode(frame, limits)
}

/// Decodes a frame sent by a server (client side).
pub fn decode_server_to_agent(frame: &[u8], limits: &Limits) -> Result<ServerToAgent, FrameError> {
    decode(frame, limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_rules() {
        let limits = Limits::default();
        assert_eq!(split(&[], &limits), Err(FrameError::Empty));
        assert_eq!(split(&[0x80], &limits), Err(FrameError::InvalidHeader));
        assert_eq!(
            split(&[0x01, 0x08], &limits),
            Err(FrameError::NonZeroHeader(1))
        );
        assert_eq!(
            split(&[0x80, 0x01], &limits),
            Err(FrameError::NonZeroHeader(128))
        );
        // A non-minimal varint zero is still the value 0.
        assert_eq!(
            split(&[0x80, 0x00, 0x08, 0x01], &limits),
            Ok(&[0x08, 0x01][..])
        );
        assert_eq!(split(&[0x00], &limits), Ok(&[][..]));
        let empty: AgentToServer = decode(&[0x00], &limits).unwrap();
        assert_eq!(empty, AgentToServer::default());
    }

    #[test]
    fn size_limit() {
        let limits = Limits::new(4);
        assert!(split(&[0, 1, 2, 3, 4], &limits).is_ok());
        let err = split(&[0, 1, 2, 3, 4, 5], &limits).unwrap_err();
        assert_eq!(err, FrameError::TooLarge { size: 5, limit: 4 });
        assert_eq!(err.close_code(), 1009);
        let big = AgentToServer {
            instance_uid: vec![1; 16],
            ..Default::default()
        };
        assert!(matches!(
            encode_with_limit(&big, &limits),
            Err(FrameError::TooLarge { size: 18, limit: 4 })
        ));
        assert!(encode_with_limit(&big, &Limits::default()).is_ok());
    }

    #[test]
    fn bad_payload() {
        let err = decode_agent_to_server(&[0x00, 0x0a, 0x05], &Limits::default()).unwrap_err();
        assert!(matches!(err, FrameError::Protobuf(_)));
        assert_eq!(err.close_code(), 1002);
    }
}
