//! Plain-HTTP transport helpers.
//!
//! The client `POST`s a bare protobuf `AgentToServer` (no varint header) with
//! `Content-Type: application/x-protobuf`, optionally gzip-compressed with
//! `Content-Encoding: gzip`; the server answers `200` with a bare `ServerToAgent`
//! and exactly the same content type (the Elastic Node client compares the
//! header by string equality), gzipped only if the request's `Accept-Encoding`
//! allows it.
//!
//! ```
//! use rmm_opamp::{http, proto::AgentToServer, Limits};
//! let msg = AgentToServer { sequence_num: 1, capabilities: 1, ..Default::default() };
//! let body = http::encode_body(&msg, true);
//! let enc = http::ContentEncoding::from_header(Some("gzip")).unwrap();
//! let back: AgentToServer = http::decode_body(&body, enc, &Limits::default()).unwrap();
//! assert_eq!(back, msg);
//! assert!(http::is_protobuf_content_type("application/x-protobuf"));
//! assert!(!http::is_protobuf_content_type("application/x-protobuf; charset=utf-8"));
//! ```

use std::io::{Read, Write};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use prost::Message;

use crate::limits::{Limits, HTTP_STATUS_CONTENT_TOO_LARGE};
use crate::proto::{AgentToServer, ServerToAgent};

/// The only content type of OpAMP plain-HTTP requests and responses.
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
/// `Content-Encoding` value for gzip bodies.
pub const CONTENT_ENCODING_GZIP: &str = "gzip";
/// Request header carrying the instance UID as canonical UUID text (v0.15.0+;
/// optional, not sent by the third-party clients).
pub const HEADER_INSTANCE_UID: &str = "OpAMP-Instance-UID";
/// Default URL path of the OpAMP endpoint (both transports).
pub const DEFAULT_PATH: &str = "/v1/opamp";
/// Default TCP port of an OpAMP server.
pub const DEFAULT_PORT: u16 = 4320;
/// Default plain-HTTP poll (= heartbeat) interval in seconds.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 30;
/// Minimum recommended retry interval after 429/503, in seconds.
pub const MIN_RETRY_AFTER_SECS: u64 = 30;

/// Why an HTTP body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The body (on the wire, or after decompression) exceeds the limit.
    #[error("OpAMP HTTP body exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// `Content-Encoding` names something other than `gzip` or `identity`.
    #[error("unsupported Content-Encoding {0:?}")]
    UnsupportedEncoding(String),
    /// `Content-Type` is not exactly `application/x-protobuf`.
    #[error("unsupported Content-Type {0:?}, expected \"application/x-protobuf\"")]
    UnsupportedContentType(String),
    /// The gzip stream is corrupt or truncated.
    #[error("invalid gzip body: {0}")]
    Gzip(String),
    /// The protobuf payload could not be decoded.
    #[error("invalid OpAMP protobuf body: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

impl HttpError {
    /// The HTTP status a server should answer with: 413 for
    /// [`HttpError::TooLarge`], 415 for an unsupported type or encoding, 400
    /// otherwise. (A server may instead answer a malformed body with 200 and a
    /// `BAD_REQUEST` `error_response`.)
    pub fn status_code(&self) -> u16 {
        match self {
            HttpError::TooLarge { .. } => HTTP_STATUS_CONTENT_TOO_LARGE,
            HttpError::UnsupportedEncoding(_) | HttpError::UnsupportedContentType(_) => 415,
            HttpError::Gzip(_) | HttpError::Protobuf(_) => 400,
        }
    }
}

/// Strict `Content-Type` check: true only for exactly `application/x-protobuf`
/// (no parameters, no case folding, no surrounding whitespace), as the Elastic
/// Node client requires of responses. Servers use the same check to tell plain
/// HTTP requests from WebSocket upgrades.
pub fn is_protobuf_content_type(value: impl AsRef<[u8]>) -> bool {
    value.as_ref() == CONTENT_TYPE_PROTOBUF.as_bytes()
}

/// Checks a request's `Content-Type` header (`None` if absent) with
/// [`is_protobuf_content_type`].
pub fn check_content_type(value: Option<&str>) -> Result<(), HttpError> {
    match value {
        Some(v) if is_protobuf_content_type(v) => Ok(()),
        other => Err(HttpError::UnsupportedContentType(
            other.unwrap_or_default().to_owned(),
        )),
    }
}

/// Body encoding, from `Content-Encoding`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ContentEncoding {
    /// No compression.
    #[default]
    Identity,
    /// gzip.
    Gzip,
}

impl ContentEncoding {
    /// Parses a `Content-Encoding` header value (`None` if absent). Accepts
    /// `gzip`, `x-gzip` and `identity` (case-insensitive, surrounding spaces
    /// ignored); anything else (including stacked encodings) is rejected.
    pub fn from_header(value: Option<&str>) -> Result<Self, HttpError> {
        let Some(value) = value else {
            return Ok(ContentEncoding::Identity);
        };
        let v = value.trim();
        if v.is_empty() || v.eq_ignore_ascii_case("identity") {
            Ok(ContentEncoding::Identity)
        } else if v.eq_ignore_ascii_case("gzip") || v.eq_ignore_ascii_case("x-gzip") {
            Ok(ContentEncoding::Gzip)
        } else {
            Err(HttpError::UnsupportedEncoding(value.to_owned()))
        }
    }

    /// The header value to send, or `None` for identity (send no header).
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            ContentEncoding::Identity => None,
            ContentEncoding::Gzip => Some(CONTENT_ENCODING_GZIP),
        }
    }
}

/// True when an `Accept-Encoding` header value (`None` if absent) allows a gzip
/// response: it lists `gzip`, `x-gzip` or `*` without `q=0`.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(value) = accept_encoding else {
        return false;
    };
    let mut gzip = None;
    let mut star = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let mut q_zero = false;
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q_zero = v.trim().parse::<f32>().is_ok_and(|q| q <= 0.0);
                }
            }
        }
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            gzip = Some(!q_zero);
        } else if coding == "*" {
            star = Some(!q_zero);
        }
    }
    gzip.or(star).unwrap_or(false)
}

/// Decompresses (if needed) a body, enforcing `limits` on both the wire size and
/// the decompressed size, and returns the bare protobuf bytes.
pub fn decompress(
    body: &[u8],
    encoding: ContentEncoding,
    limits: &Limits,
) -> Result<Vec<u8>, HttpError> {
    let limit = limits.max_message_size;
    if body.len() > limit {
        return Err(HttpError::TooLarge { limit });
    }
    match encoding {
        ContentEncoding::Identity => Ok(body.to_vec()),
        ContentEncoding::Gzip => {
            let mut out = Vec::new();
            // Read at most limit + 1 bytes so a gzip bomb costs no more than that.
            let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
            MultiGzDecoder::new(body)
                .take(cap)
                .read_to_end(&mut out)
                .map_err(|e| HttpError::Gzip(e.to_string()))?;
            if out.len() > limit {
                return Err(HttpError::TooLarge { limit });
            }
            Ok(out)
        }
    }
}

/// Decodes an HTTP body into `M`: size limits, optional gzip, then protobuf.
pub fn decode_body<M: Message + Default>(
    body: &[u8],
    encoding: ContentEncoding,
    limits: &Limits,
) -> Result<M, HttpError> {
    match encoding {
        ContentEncoding::Identity => {
            if body.len() > limits.max_message_size {
                return Err(HttpError::TooLarge {
                    limit: limits.max_message_size,
                });
            }
            Ok(M::decode(body)?)
        }
        ContentEncoding::Gzip => {
            let raw = decompress(body, encoding, limits)?;
            Ok(M::decode(raw.as_slice())?)
        }
    }
}

/// Server side: decodes a request body. `content_encoding` is the request's
/// `Content-Encoding` header value, if any.
pub fn decode_agent_to_server(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<AgentToServer, HttpError> {
    decode_body(
        body,
        ContentEncoding::from_header(content_encoding)?,
        limits,
    )
}

/// Client side: decodes a response body. `content_encoding` is the response's
/// `Content-Encoding` header value, if any (most HTTP clients decompress
/// transparently, in which case pass `None`).
pub fn decode_server_to_agent(
    body: &[u8],
    content_encoding: Option<&str>,
    limits: &Limits,
) -> Result<ServerToAgent, HttpError> {
    decode_body(
        body,
        ContentEncoding::from_header(content_encoding)?,
        limits,
    )
}

/// Encodes `msg` as an HTTP body, gzip-compressed when `gzip` is true (then send
/// `Content-Encoding: gzip`).
pub fn encode_body<M: Message>(msg: &M, gzip: bool) -> Vec<u8> {
    let raw = msg.encode_to_vec();
    if gzip {
        gzip_bytes(&raw)
    } else {
        raw
    }
}

/// Like [`encode_body`], but refuses messages larger than the limit (the spec
/// says: do not send an oversized message).
pub fn encode_body_with_limit<M: Message>(
    msg: &M,
    gzip: bool,
    limits: &Limits,
) -> Result<Vec<u8>, HttpError> {
    if msg.encoded_len() > limits.max_message_size {
        return Err(HttpError::TooLarge {
            limit: limits.max_message_size,
        });
    }
    Ok(encode_body(msg, gzip))
}

/// gzip-compresses `data` (default level).
pub fn gzip_bytes(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 32),
        Compression::default(),
    );
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_is_exact() {
        assert!(is_protobuf_content_type("application/x-protobuf"));
        assert!(is_protobuf_content_type(b"application/x-protobuf"));
        for bad in [
            "application/x-protobuf; charset=utf-8",
            "Application/X-Protobuf",
            " application/x-protobuf",
            "application/protobuf",
            "",
        ] {
            assert!(!is_protobuf_content_type(bad), "{bad}");
        }
        assert!(check_content_type(Some(CONTENT_TYPE_PROTOBUF)).is_ok());
        assert_eq!(check_content_type(None).unwrap_err().status_code(), 415);
    }

    #[test]
    fn encodings() {
        assert_eq!(
            ContentEncoding::from_header(None),
            Ok(ContentEncoding::Identity)
        );
        assert_eq!(
            ContentEncoding::from_header(Some("GZIP ")),
            Ok(ContentEncoding::Gzip)
        );
        assert_eq!(
            ContentEncoding::from_header(Some("identity")),
            Ok(ContentEncoding::Identity)
        );
        assert!(ContentEncoding::from_header(Some("br")).is_err());
        assert!(ContentEncoding::from_header(Some("gzip, br")).is_err());
        assert_eq!(ContentEncoding::Gzip.header_value(), Some("gzip"));
        assert_eq!(ContentEncoding::Identity.header_value(), None);
    }

    #[test]
    fn accept_encoding() {
        assert!(accepts_gzip(Some("gzip, deflate")));
        assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(!accepts_gzip(Some("deflate, br")));
        assert!(!accepts_gzip(Some("")));
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn gzip_bomb_is_capped() {
        let zeros = vec![0u8; 1 << 20];
        let bomb = gzip_bytes(&zeros);
        assert!(bomb.len() < 8 * 1024);
        let limits = Limits::new(64 * 1024);
        let err = decompress(&bomb, ContentEncoding::Gzip, &limits).unwrap_err();
        assert_eq!(err, HttpError::TooLarge { limit: 64 * 1024 });
        assert_eq!(err.status_code(), 413);
        // Exactly at the limit is fine.
        let exact = gzip_bytes(&vec![7u8; 64 * 1024]);
        assert_eq!(
            decompress(&exact, ContentEncoding::Gzip, &limits)
                .unwrap()
                .len(),
            64 * 1024
        );
    }

    #[test]
    fn wire_size_limit_and_garbage() {
        let limits = Limits::new(4);
        assert_eq!(
            decode_agent_to_server(&[0; 5], None, &limits).unwrap_err(),
            HttpError::TooLarge { limit: 4 }
        );
        assert!(matches!(
            decode_agent_to_server(b"not gzip", Some("gzip"), &Limits::default()),
            Err(HttpError::Gzip(_))
        ));
        let truncated = &gzip_bytes(b"hello world")[..10];
        assert!(matches!(
            decode_agent_to_server(truncated, Some("gzip"), &Limits::default()),
            Err(HttpError::Gzip(_))
        ));
        let err = decode_agent_to_server(&[0x0a, 0x05], None, &Limits::default()).unwrap_err();
        assert!(matches!(err, HttpError::Protobuf(_)));
        assert_eq!(err.status_code(), 400);
        let msg = AgentToServer {
            instance_uid: vec![9; 16],
            ..Default::default()
        };
        assert!(encode_body_with_limit(&msg, false, &limits).is_err());
        assert_eq!(
            encode_body_with_limit(&msg, false, &Limits::default()).unwrap(),
            msg.encode_to_vec()
        );
    }
}
