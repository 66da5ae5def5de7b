//! Release signature checks, in the control plane's format (`releases::signing`): public keys
//! `rmm-ed25519-public:<base64 of 32 bytes>`, signatures raw 64-byte Ed25519 over
//! `b"rmm-agent-release-v1\0" || sha256(build)`, verified with `verify_strict`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Domain separation of release signatures (must equal the control plane's).
pub const SIGNED_CONTEXT: &[u8] = b"rmm-agent-release-v1\0";
/// Prefix of a public key's text form.
pub const PUBLIC_PREFIX: &str = "rmm-ed25519-public:";

/// A pinned release key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReleaseKey(VerifyingKey);

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleaseKey({})", self.key_id())
    }
}

impl ReleaseKey {
    /// Parses `rmm-ed25519-public:<base64>`; the error says what is wrong (never echoing more
    /// than the start of the text).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let body = text.strip_prefix(PUBLIC_PREFIX).ok_or_else(|| {
            let start: String = text.chars().take(24).collect();
            format!("expected it to start with {PUBLIC_PREFIX:?}, found {start:?}")
        })?;
        let bytes = B64
            .decode(body)
            .map_err(|e| format!("invalid base64 after {PUBLIC_PREFIX:?}: {e}"))?;
        let bytes: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("expected 32 bytes, found {}", bytes.len()))?;
        VerifyingKey::from_bytes(&bytes)
            .map(Self)
            .map_err(|_| "the bytes are not a valid Ed25519 public key".to_owned())
    }

    /// First 8 bytes of the SHA-256 of the key, hex (as the control plane names keys).
    pub fn key_id(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// The raw key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }
}

/// Parses every pinned key; the error names the first bad one by position.
pub fn parse_keys(texts: &[String]) -> Result<Vec<ReleaseKey>, String> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // Public keys are not secret: quote (the start of) the text to name the key.
            let quoted: String = t.trim().chars().take(80).collect();
            ReleaseKey::parse(t).map_err(|e| format!("signing_keys[{i}] ({quoted:?}): {e}"))
        })
        .collect()
}

/// Why a build is refused. The `Display` texts are the `error_message`s reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no pinned release keys: this agent was enrolled without signing keys and accepts no update until it is enrolled again")]
    NoKeys,
    #[error("sha256 mismatch: the download has sha256 {actual}, the offer says {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("signature verification failed: {0}")]
    BadSignature(String),
}

/// Checks a downloaded build: its digest equals the offered `content_hash`, and `signature`
/// verifies over it with one of `keys`.
pub fn verify(
    digest: &[u8; 32],
    content_hash: &[u8],
    signature: &[u8],
    keys: &[ReleaseKey],
) -> Result<(), VerifyError> {
    if keys.is_empty() {
        return Err(VerifyError::NoKeys);
    }
    if content_hash != digest {
        return Err(VerifyError::HashMismatch {
            expected: hex(content_hash),
            actual: hex(digest),
        });
    }
    let signature: [u8; 64] = signature.try_into().map_err(|_| {
        VerifyError::BadSignature(format!(
            "the signature has {} bytes, an Ed25519 signature has 64",
            signature.len()
        ))
    })?;
    let signature = Signature::from_bytes(&signature);
    let message = signed_message(digest);
    if keys
        .iter()
        .any(|k| k.0.verify_strict(&message, &signature).is_ok())
    {
        return Ok(());
    }
    let ids: Vec<String> = keys.iter().map(ReleaseKey::key_id).collect();
    Err(VerifyError::BadSignature(format!(
        "the build with sha256 {} is not signed by a pinned key ({})",
        hex(digest),
        ids.join(", ")
    )))
}

/// What a release signature covers.
pub fn signed_message(digest: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNED_CONTEXT.len() + 32);
    m.extend_from_slice(SIGNED_CONTEXT);
    m.extend_from_slice(digest);
    m
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};

    fn key(seed: u8) -> (SigningKey, ReleaseKey) {
        let sk = SigningKey::from_bytes(&[seed; 32]);
        let text = format!(
            "{PUBLIC_PREFIX}{}",
            B64.encode(sk.verifying_key().as_bytes())
        );
        (sk, ReleaseKey::parse(&text).unwrap())
    }

    fn signed(build: &[u8], sk: &SigningKey) -> ([u8; 32], Vec<u8>) {
        let digest: [u8; 32] = Sha256::digest(build).into();
        let sig = sk.sign(&signed_message(&digest)).to_bytes().to_vec();
        (digest, sig)
    }

    #[test]
    fn a_signed_build_verifies() {
        let (sk, pk) = key(1);
        let (_, other) = key(2);
        let (digest, sig) = signed(b"build B", &sk);
        verify(&digest, &digest, &sig, &[pk]).unwrap();
        verify(&digest, &digest, &sig, &[other, pk]).unwrap();
    }

    #[test]
    fn refusals_name_the_reason() {
        let (sk, pk) = key(1);
        let (other_sk, other) = key(2);
        let (digest, sig) = signed(b"build B", &sk);
        // Wrong key.
        let e = verify(&digest, &digest, &sig, &[other]).unwrap_err();
        assert!(
            e.to_string().starts_with("signature verification failed:"),
            "{e}"
        );
        assert!(e.to_string().contains(&other.key_id()), "{e}");
        // A bit flipped in the signature.
        let mut bad = sig.clone();
        bad[10] ^= 1;
        assert!(matches!(
            verify(&digest, &digest, &bad, &[pk]),
            Err(VerifyError::BadSignature(_))
        ));
        // Signed by another key over the same build.
        let (_, sig2) = signed(b"build B", &other_sk);
        assert!(verify(&digest, &digest, &sig2, &[pk]).is_err());
        // Truncated signature.
        let e = verify(&digest, &digest, &sig[..63], &[pk]).unwrap_err();
        assert!(e.to_string().contains("63 bytes"), "{e}");
        // The download is not what was offered (e.g. truncated).
        let truncated: [u8; 32] = Sha256::digest(b"build").into();
        let e = verify(&truncated, &digest, &sig, &[pk]).unwrap_err();
        assert!(e.to_string().starts_with("sha256 mismatch:"), "{e}");
        assert!(e.to_string().contains(&hex(&digest)), "{e}");
        // A signature over other content with a matching hash claim does not help.
        let (digest_c, sig_c) = signed(b"build C", &sk);
        assert!(verify(&digest, &digest, &sig_c, &[pk]).is_err());
        assert!(verify(&digest_c, &digest_c, &sig_c, &[pk]).is_ok());
        // No keys pinned.
        assert_eq!(
            verify(&digest, &digest, &sig, &[]).unwrap_err(),
            VerifyError::NoKeys
        );
        assert!(VerifyError::NoKeys
            .to_string()
            .starts_with("no pinned release keys"));
    }

    #[test]
    fn key_text_is_checked() {
        let (_, pk) = key(3);
        let text = format!(
            "{PUBLIC_PREFIX}{}",
            B64.encode(pk.verifying_key().as_bytes())
        );
        assert_eq!(ReleaseKey::parse(&format!(" {text}\n")).unwrap(), pk);
        assert!(ReleaseKey::parse("rmm-ed25519-secret:AAAA")
            .unwrap_err()
            .contains("expected it to start with"));
        assert!(ReleaseKey::parse("rmm-ed25519-public:!!")
            .unwrap_err()
            .contains("base64"));
        assert!(ReleaseKey::parse("rmm-ed25519-public:AAAA")
            .unwrap_err()
            .contains("32 bytes"));
        let e = parse_keys(&[text, "nope".into()]).unwrap_err();
        assert!(e.starts_with("signing_keys[1] (\"nope\"):"), "{e}");
    }
}
