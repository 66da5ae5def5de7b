//! Ed25519 signing of agent builds, done offline: the private key never has to live on the
//! control plane, which only holds public keys.
//!
//! # What is signed
//!
//! The signature covers `SIGNED_CONTEXT || sha256(build)`: the 32-byte SHA-256 digest of the
//! whole file, prefixed with the domain-separation string `rmm-agent-release-v1\0` so that a
//! release key can never be tricked into signing anything that verifies as something else.
//! Hashing first lets both sides stream builds of any size. Verification uses
//! `verify_strict` (rejects small-order keys and non-canonical signatures).
//!
//! # Text formats (one line, trailing newline optional, surrounding whitespace ignored)
//!
//! | item        | format                                              |
//! | ----------- | --------------------------------------------------- |
//! | private key | `rmm-ed25519-secret:` + base64 (standard, padded) of the 32-byte seed |
//! | public key  | `rmm-ed25519-public:` + base64 of the 32-byte key   |
//! | signature   | `rmm-ed25519-sig:` + base64 of the 64-byte signature |
//!
//! A key id (first 8 bytes of the SHA-256 of the public key, hex) names a key in messages and
//! in the catalog without revealing anything.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest as _, Sha256};

/// Domain separation for release signatures; changing it invalidates every signature.
pub const SIGNED_CONTEXT: &[u8] = b"rmm-agent-release-v1\0";
pub const SECRET_PREFIX: &str = "rmm-ed25519-secret:";
pub const PUBLIC_PREFIX: &str = "rmm-ed25519-public:";
pub const SIGNATURE_PREFIX: &str = "rmm-ed25519-sig:";
/// File names `keygen` writes inside its output directory.
pub const SECRET_FILE: &str = "release-signing.key";
pub const PUBLIC_FILE: &str = "release-signing.pub";

/// A SHA-256 digest of a build.
pub type Sha256Digest = [u8; 32];

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} is malformed: {reason}")]
    Malformed { what: String, reason: String },
    #[error(
        "{path} already exists; refusing to overwrite a signing key (move it away or pick another --out)"
    )]
    Exists { path: PathBuf },
    #[error(
        "{path} is readable by group or others (mode {mode:o}); a private key must be mode 0600 \
         (chmod 600 {path})"
    )]
    InsecureKeyFile { path: PathBuf, mode: u32 },
    #[error(
        "signature verification FAILED: the build with sha256 {sha256} was not signed by key {key_id} \
         (wrong key, or the build or signature was modified or truncated)"
    )]
    BadSignature { sha256: String, key_id: String },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SigningError + '_ {
    move |source| SigningError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A release signing key (private). Zeroized on drop by ed25519-dalek.
pub struct SecretKey(SigningKey);

/// A release verification key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

/// A release signature.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ReleaseSignature(Signature);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey(key id {})", self.public().key_id())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl fmt::Debug for ReleaseSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReleaseSignature({})", self.encode())
    }
}

/// Decode `PREFIX` + base64 of exactly `N` bytes.
fn decode_fixed<const N: usize>(
    text: &str,
    prefix: &str,
    what: &str,
) -> Result<[u8; N], SigningError> {
    let malformed = |reason: String| SigningError::Malformed {
        what: what.to_owned(),
        reason,
    };
    let text = text.trim();
    let body = text.strip_prefix(prefix).ok_or_else(|| {
        let got: String = text.chars().take(24).collect();
        malformed(format!(
            "expected it to start with {prefix:?}, found {got:?}"
        ))
    })?;
    let bytes = B64
        .decode(body)
        .map_err(|e| malformed(format!("invalid base64 after {prefix:?}: {e}")))?;
    bytes.as_slice().try_into().map_err(|_| {
        malformed(format!(
            "expected {N} bytes after {prefix:?}, found {}",
            bytes.len()
        ))
    })
}

impl SecretKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> SecretKey {
        SecretKey(SigningKey::from_bytes(&crate::secrets::random_bytes::<32>()))
    }

    pub fn parse(text: &str) -> Result<SecretKey, SigningError> {
        let seed = decode_fixed::<32>(text, SECRET_PREFIX, "private key")?;
        Ok(SecretKey(SigningKey::from_bytes(&seed)))
    }

    pub fn encode(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Read a private key file, refusing one that group or others can read.
    pub fn read(path: &Path) -> Result<SecretKey, SigningError> {
        let file = File::open(path).map_err(io_err(path))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = file.metadata().map_err(io_err(path))?.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SigningError::InsecureKeyFile {
                    path: path.to_owned(),
                    mode,
                });
            }
        }
        let text = read_small_text(file, path)?;
        SecretKey::parse(&text).map_err(|e| with_path(e, path))
    }

    /// Sign a build given its SHA-256 digest.
    pub fn sign_digest(&self, digest: &Sha256Digest) -> ReleaseSignature {
        ReleaseSignature(self.0.sign(&signed_message(digest)))
    }
}

impl PublicKey {
    pub fn parse(text: &str) -> Result<PublicKey, SigningError> {
        let bytes = decode_fixed::<32>(text, PUBLIC_PREFIX, "public key")?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| SigningError::Malformed {
                what: "public key".into(),
                reason: "the bytes are not a valid Ed25519 point".into(),
            })
    }

    pub fn encode(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", B64.encode(self.0.as_bytes()))
    }

    pub fn read(path: &Path) -> Result<PublicKey, SigningError> {
        let file = File::open(path).map_err(io_err(path))?;
        let text = read_small_text(file, path)?;
        PublicKey::parse(&text).map_err(|e| with_path(e, path))
    }

    /// First 8 bytes of the SHA-256 of the key, hex: a short, stable name for the key.
    pub fn key_id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.as_bytes())[..8])
    }

    /// Check a signature over a build given its SHA-256 digest.
    pub fn verify_digest(
        &self,
        digest: &Sha256Digest,
        signature: &ReleaseSignature,
    ) -> Result<(), SigningError> {
        self.0
            .verify_strict(&signed_message(digest), &signature.0)
            .map_err(|_| SigningError::BadSignature {
                sha256: hex::encode(digest),
                key_id: self.key_id(),
            })
    }
}

impl ReleaseSignature {
    /// The raw 64 bytes (what OpAMP `DownloadableFile.signature` carries).
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0.to_bytes()
    }

    pub fn parse(text: &str) -> Result<ReleaseSignature, SigningError> {
        let bytes = decode_fixed::<64>(text, SIGNATURE_PREFIX, "signature")?;
        Ok(ReleaseSignature(Signature::from_bytes(&bytes)))
    }

    pub fn encode(&self) -> String {
        format!("{SIGNATURE_PREFIX}{}", B64.encode(self.0.to_bytes()))
    }

    pub fn read(path: &Path) -> Result<ReleaseSignature, SigningError> {
        let file = File::open(path).map_err(io_err(path))?;
        let text = read_small_text(file, path)?;
        ReleaseSignature::parse(&text).map_err(|e| with_path(e, path))
    }
}

/// Verify with any of several trusted keys; returns the key that matched.
pub fn verify_with_any<'k>(
    keys: &'k [PublicKey],
    digest: &Sha256Digest,
    signature: &ReleaseSignature,
) -> Result<&'k PublicKey, SigningError> {
    keys.iter()
        .find(|k| k.verify_digest(digest, signature).is_ok())
        .ok_or_else(|| SigningError::BadSignature {
            sha256: hex::encode(digest),
            key_id: match keys {
                [one] => one.key_id(),
                _ => format!(
                    "any of the {} configured keys ({})",
                    keys.len(),
                    keys.iter()
                        .map(PublicKey::key_id)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        })
}

fn signed_message(digest: &Sha256Digest) -> Vec<u8> {
    let mut m = Vec::with_capacity(SIGNED_CONTEXT.len() + digest.len());
    m.extend_from_slice(SIGNED_CONTEXT);
    m.extend_from_slice(digest);
    m
}

fn with_path(e: SigningError, path: &Path) -> SigningError {
    match e {
        SigningError::Malformed { what, reason } => SigningError::Malformed {
            what: format!("{what} in {}", path.display()),
            reason,
        },
        other => other,
    }
}

/// Key and signature files are one short line; refuse anything large rather than reading it.
fn read_small_text(file: File, path: &Path) -> Result<String, SigningError> {
    const MAX: u64 = 4096;
    let mut buf = Vec::new();
    file.take(MAX + 1)
        .read_to_end(&mut buf)
        .map_err(io_err(path))?;
    if buf.len() as u64 > MAX {
        return Err(SigningError::Malformed {
            what: path.display().to_string(),
            reason: format!("larger than {MAX} bytes; expected one line"),
        });
    }
    String::from_utf8(buf).map_err(|_| SigningError::Malformed {
        what: path.display().to_string(),
        reason: "not UTF-8 text".into(),
    })
}

/// SHA-256 of everything `reader` yields, in 64 KiB chunks (builds can be large).
pub fn sha256_reader(mut reader: impl Read) -> io::Result<Sha256Digest> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(hasher.finalize().into())
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<Sha256Digest, SigningError> {
    let file = File::open(path).map_err(io_err(path))?;
    sha256_reader(file).map_err(io_err(path))
}

/// Create `dir` if needed and write a new key pair into it: the private key with mode 0600
/// from creation (never briefly world-readable), the public key with 0644. Refuses to
/// overwrite existing files. Returns (private, public) paths.
pub fn write_keypair(dir: &Path, key: &SecretKey) -> Result<(PathBuf, PathBuf), SigningError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let secret_path = dir.join(SECRET_FILE);
    let public_path = dir.join(PUBLIC_FILE);
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(SigningError::Exists { path: p.clone() });
        }
    }
    write_new(&secret_path, &key.encode(), 0o600)?;
    write_new(&public_path, &key.public().encode(), 0o644)?;
    Ok((secret_path, public_path))
}

/// Write a one-line text file that must not exist yet.
pub fn write_new(path: &Path, line: &str, mode: u32) -> Result<(), SigningError> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            SigningError::Exists {
                path: path.to_owned(),
            }
        } else {
            io_err(path)(e)
        }
    })?;
    f.write_all(format!("{line}\n").as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(data: &[u8]) -> Sha256Digest {
        sha256_reader(data).unwrap()
    }

    #[test]
    fn sign_verify_round_trip_through_text() {
        let key = SecretKey::generate();
        let key2 = SecretKey::parse(&key.encode()).unwrap();
        let public = PublicKey::parse(&key2.public().encode()).unwrap();
        let sig = key2.sign_digest(&digest(b"build"));
        let sig = ReleaseSignature::parse(&format!("  {}\n", sig.encode())).unwrap();
        public.verify_digest(&digest(b"build"), &sig).unwrap();
    }

    #[test]
    fn other_digest_or_key_is_refused() {
        let key = SecretKey::generate();
        let sig = key.sign_digest(&digest(b"build"));
        let err = key
            .public()
            .verify_digest(&digest(b"buil"), &sig)
            .unwrap_err();
        assert!(matches!(err, SigningError::BadSignature { .. }), "{err}");
        let other = SecretKey::generate().public();
        assert!(other.verify_digest(&digest(b"build"), &sig).is_err());
        assert!(verify_with_any(&[other, key.public()], &digest(b"build"), &sig).is_ok());
        let err = verify_with_any(&[other], &digest(b"build"), &sig).unwrap_err();
        assert!(err.to_string().contains(&other.key_id()), "{err}");
    }

    #[test]
    fn signature_is_over_the_prefixed_digest() {
        // A signature over the bare digest (no domain separation) must not verify.
        let key = SecretKey::generate();
        let d = digest(b"build");
        let bare = ReleaseSignature(key.0.sign(&d));
        assert!(key.public().verify_digest(&d, &bare).is_err());
    }

    #[test]
    fn malformed_text_is_named() {
        let e = PublicKey::parse("ssh-ed25519 AAAA")
            .unwrap_err()
            .to_string();
        assert!(e.contains("public key") && e.contains(PUBLIC_PREFIX), "{e}");
        let e = ReleaseSignature::parse("rmm-ed25519-sig:!!!")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid base64"), "{e}");
        let e = ReleaseSignature::parse(&format!("{SIGNATURE_PREFIX}{}", B64.encode([0u8; 63])))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected 64 bytes") && e.contains("63"), "{e}");
        // A public key where a private one is expected is a clear prefix error.
        let pubtext = SecretKey::generate().public().encode();
        let e = SecretKey::parse(&pubtext).unwrap_err().to_string();
        assert!(
            e.contains("private key") && e.contains(SECRET_PREFIX),
            "{e}"
        );
    }

    #[test]
    fn streaming_hash_matches_one_shot() {
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let streamed = sha256_reader(io::Cursor::new(&data)).unwrap();
        let one: Sha256Digest = Sha256::digest(&data).into();
        assert_eq!(streamed, one);
    }
}
