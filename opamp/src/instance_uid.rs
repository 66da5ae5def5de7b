//! The agent instance UID: exactly 16 bytes on the wire (UUIDv7 recommended).

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Why bytes or text could not be turned into an [`InstanceUid`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceUidError {
    /// The byte string was not exactly 16 bytes long (e.g. an old string ULID
    /// peer, or an empty field).
    #[error("instance_uid must be exactly 16 bytes, got {0}")]
    WrongLength(usize),
    /// The text was not a UUID.
    #[error("instance_uid text is not a UUID: {0}")]
    InvalidText(String),
}

/// An OpAMP agent instance UID: 16 opaque bytes, rendered as a canonical UUID
/// (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`) wherever it is shown, logged, used in
/// the `OpAMP-Instance-UID` HTTP header, or as `service.instance.id`.
///
/// ```
/// use rmm_opamp::InstanceUid;
/// let uid = InstanceUid::new_v7();
/// let wire: Vec<u8> = uid.to_vec();
/// assert_eq!(InstanceUid::from_bytes(&wire).unwrap(), uid);
/// assert!(InstanceUid::from_bytes(b"01ARZ3NDEKTSV4RRFFQ69G5FAV").is_err());
/// assert_eq!(uid.to_string().parse::<InstanceUid>().unwrap(), uid);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceUid([u8; 16]);

impl InstanceUid {
    /// Length of an instance UID on the wire.
    pub const LEN: usize = 16;

    /// Wraps 16 raw bytes.
    pub const fn from_array(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }

    /// Validates a wire value: exactly 16 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, InstanceUidError> {
        <[u8; 16]>::try_from(bytes)
            .map(Self)
            .map_err(|_| InstanceUidError::WrongLength(bytes.len()))
    }

    /// A fresh, time-ordered UUIDv7 (what agents should generate).
    pub fn new_v7() -> Self {
        Self::from(Uuid::now_v7())
    }

    /// The 16 raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The 16 raw bytes as a `Vec`, ready for an `instance_uid` field.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.to_vec()
    }

    /// As a [`Uuid`].
    pub const fn to_uuid(&self) -> Uuid {
        Uuid::from_bytes(self.0)
    }
}

impl From<Uuid> for InstanceUid {
    fn from(value: Uuid) -> Self {
        Self(value.into_bytes())
    }
}

impl From<InstanceUid> for Uuid {
    fn from(value: InstanceUid) -> Self {
        value.to_uuid()
    }
}

impl From<[u8; 16]> for InstanceUid {
    fn from(value: [u8; 16]) -> Self {
        Self(value)
    }
}

impl From<InstanceUid> for Vec<u8> {
    fn from(value: InstanceUid) -> Self {
        value.to_vec()
    }
}

impl TryFrom<&[u8]> for InstanceUid {
    type Error = InstanceUidError;
    fn try_from(value: &[u8]) -> Result<Self, Self::Error> {
        Self::from_bytes(value)
    }
}

impl TryFrom<&Vec<u8>> for InstanceUid {
    type Error = InstanceUidError;
    fn try_from(value: &Vec<u8>) -> Result<Self, Self::Error> {
        Self::from_bytes(value)
    }
}

impl AsRef<[u8]> for InstanceUid {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for InstanceUid {
    type Err = InstanceUidError;
    /// Parses any text form [`Uuid`] accepts (hyphenated, simple, braced, urn).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s.trim())
            .map(Self::from)
            .map_err(|_| InstanceUidError::InvalidText(s.to_owned()))
    }
}

impl fmt::Display for InstanceUid {
    /// Canonical lowercase hyphenated UUID text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_uuid().hyphenated(), f)
    }
}

impl fmt::Debug for InstanceUid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InstanceUid({self})")
    }
}
