//! Secrets: random tokens (API tokens, enrollment tokens, agent secrets), their SHA-256
//! digests, argon2 password hashes, and the HS256 JWTs handed out at login.
//!
//! Tokens carry 256 bits from the OS random source behind a readable prefix (`rmm_at_`,
//! `rmm_et_`, `rmm_as_`), are shown once and stored only as SHA-256 digests: a lookup by
//! digest is one indexed query, which scales to heartbeats from many agents, and a 256-bit
//! random secret needs no slow hash. Passwords, which are guessable, get argon2.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "rmm_at_";
/// Prefix of enrollment tokens.
pub const ENROLLMENT_TOKEN_PREFIX: &str = "rmm_et_";
/// Prefix of agent secrets.
pub const AGENT_SECRET_PREFIX: &str = "rmm_as_";

/// `n` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the OS random source failed");
    buf
}

/// A new token: `prefix` + 32 random bytes in URL-safe base64 (43 characters).
pub fn new_token(prefix: &str) -> String {
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()))
}

/// Hex SHA-256 of a token, the form stored in the database.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The first characters of a token, safe to show in listings.
pub fn token_display_prefix(token: &str) -> String {
    token.chars().take(12).collect()
}

/// A random password for `user create` when none is given (24 URL-safe characters).
pub fn new_password() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

/// Hash a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt =
        SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    Ok(hash.to_string())
}

/// Check a password against a stored PHC string.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash of a fixed password, verified against when the email is unknown so that login
/// takes the same time whether or not the account exists.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not-a-real-password").expect("argon2 works"))
}

/// Claims of a login JWT. Only the user id and times: role and scope are read from the
/// database on every request, so a changed or deleted user takes effect at once.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    /// Issued at (seconds).
    pub iat: i64,
    /// Expires at (seconds).
    pub exp: i64,
    /// Token kind; always "user".
    pub typ: String,
}

/// HS256 signing key for login JWTs.
#[derive(Clone)]
pub struct JwtKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JwtKey(..)")
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum JwtError {
    Malformed,
    BadSignature,
    Expired,
}

type HmacSha256 = Hmac<Sha256>;

impl JwtKey {
    pub fn new(key: &[u8]) -> Self {
        JwtKey { key: key.to_vec() }
    }

    fn mac(&self) -> HmacSha256 {
        HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length")
    }

    /// Sign `claims` as a compact JWS (`header.payload.signature`).
    pub fn sign(&self, claims: &Claims) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signing_input = format!("{header}.{payload}");
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        format!("{signing_input}.{sig}")
    }

    /// Verify signature (constant time), algorithm and expiry; return the claims.
    pub fn verify(&self, token: &str, now_secs: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: serde_json::Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Malformed);
        }
        let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        mac.verify_slice(&sig).map_err(|_| JwtError::BadSignature)?;
        let claims: Claims = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        if claims.exp <= now_secs {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_prefixed_and_distinct() {
        let a = new_token(API_TOKEN_PREFIX);
        let b = new_token(API_TOKEN_PREFIX);
        assert!(a.starts_with("rmm_at_"));
        assert_eq!(a.len(), 7 + 43);
        assert_ne!(a, b);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }

    #[test]
    fn passwords_verify() {
        let h = hash_password("hunter2hunter2").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("hunter2hunter2", &h));
        assert!(!verify_password("hunter3", &h));
        assert!(!verify_password("x", "garbage"));
    }

    #[test]
    fn jwt_round_trip_and_rejections() {
        let key = JwtKey::new(b"0123456789abcdef0123456789abcdef");
        let c = Claims {
            sub: "u1".into(),
            iat: 100,
            exp: 200,
            typ: "user".into(),
        };
        let t = key.sign(&c);
        assert_eq!(key.verify(&t, 150).unwrap().sub, "u1");
        assert_eq!(key.verify(&t, 200).unwrap_err(), JwtError::Expired);
        let other = JwtKey::new(b"another key another key another k");
        assert_eq!(other.verify(&t, 150).unwrap_err(), JwtError::BadSignature);
        assert_eq!(key.verify("a.b", 150).unwrap_err(), JwtError::Malformed);
        // alg=none is refused
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            t.split('.').nth(1).unwrap()
        );
        assert_eq!(key.verify(&none, 150).unwrap_err(), JwtError::Malformed);
    }
}
