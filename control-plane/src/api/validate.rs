//! Checks on request fields, each failing with a 422 that names the field.

use std::collections::BTreeMap;

use super::error::ApiError;

/// A display name: trimmed, 1 to 200 characters, no control characters.
pub fn name(field: &str, value: &str) -> Result<String, ApiError> {
    text(field, value, 200)
}

/// Free text: trimmed, 1 to `max` characters, no control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ApiError::invalid(format!("{field}: must not be empty")));
    }
    if v.chars().count() > max {
        return Err(ApiError::invalid(format!(
            "{field}: longer than {max} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::invalid(format!(
            "{field}: must not contain control characters"
        )));
    }
    Ok(v.to_owned())
}

/// An email address: something@something, at most 254 characters; returned lower-case.
pub fn email(value: &str) -> Result<String, ApiError> {
    let v = text("email", value, 254)?.to_lowercase();
    match v.split_once('@') {
        Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !v.contains(char::is_whitespace) =>
        {
            Ok(v)
        }
        _ => Err(ApiError::invalid("email: not an email address")),
    }
}

/// A password: 8 to 1024 characters.
pub fn password(value: &str) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n < 8 {
        return Err(ApiError::invalid("password: must be at least 8 characters"));
    }
    if n > 1024 {
        return Err(ApiError::invalid("password: longer than 1024 characters"));
    }
    Ok(())
}

/// `host:port` (a name, IPv4 or `[IPv6]`, and a port 1-65535).
pub fn host_port(value: &str) -> Result<String, ApiError> {
    let v = value.trim();
    let bad = || ApiError::invalid(format!("metrics_address: {v:?} is not host:port"));
    let (host, port) = v.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().map_err(|_| bad())?;
    if port == 0 || host.is_empty() || host.len() > 253 || host.contains(['/', ' ', '@', '?', '#'])
    {
        return Err(bad());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(bad());
    }
    Ok(v.to_owned())
}

/// Labels: at most 64, keys like Prometheus label names (`[a-zA-Z_][a-zA-Z0-9_]*`, not
/// starting with `__`, up to 64 characters), values up to 256 characters.
pub fn labels(field: &str, labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid(format!("{field}: at most 64 labels")));
    }
    for (k, v) in labels {
        let ok_key = !k.is_empty()
            && k.len() <= 64
            && !k.starts_with("__")
            && k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_key {
            return Err(ApiError::invalid(format!(
                "{field}: key {k:?} must match [a-zA-Z_][a-zA-Z0-9_]* (at most 64 characters, not starting with __)"
            )));
        }
        if v.chars().count() > 256 || v.chars().any(char::is_control) {
            return Err(ApiError::invalid(format!(
                "{field}: value of {k:?} must be at most 256 characters, no control characters"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks() {
        assert_eq!(name("name", "  Acme ").unwrap(), "Acme");
        assert!(name("name", " ").unwrap_err().message.contains("name"));
        assert!(name("name", &"x".repeat(201)).is_err());
        assert_eq!(email("A@B.example").unwrap(), "a@b.example");
        assert!(email("nope").is_err());
        assert!(host_port("10.0.0.1:9464").is_ok());
        assert!(host_port("[::1]:9464").is_ok());
        assert!(host_port("web-01.lan:9464").is_ok());
        assert!(host_port("::1:9464").is_err());
        assert!(host_port("x:0").is_err());
        assert!(host_port("http://x:1").is_err());
        let mut l = BTreeMap::new();
        l.insert("env".to_owned(), "prod".to_owned());
        assert!(labels("labels", &l).is_ok());
        l.insert("bad-key".to_owned(), "x".to_owned());
        assert!(labels("labels", &l)
            .unwrap_err()
            .message
            .contains("bad-key"));
    }
}
