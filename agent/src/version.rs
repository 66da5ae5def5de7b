//! The agent's version, stampable into a built binary without recompiling.
//!
//! The binary carries one `SLOT`: a marker followed by a NUL-padded version. Empty (as
//! compiled), the version is `CARGO_PKG_VERSION`; `rmm-agent stamp-version` writes a version
//! into a *copy* of the binary, so one compile yields builds A and B for tests and release
//! tooling. The slot is read with `read_volatile`, so the compiler cannot fold the compiled
//! (empty) contents into the code.

use std::sync::OnceLock;

/// Length of the marker that opens the slot.
const MARKER_LEN: usize = 24;
/// Bytes for the version after the marker (NUL-padded; at least one NUL stays).
pub const VERSION_CAPACITY: usize = 64;
/// The marker, stored XOR [`MASK`] so that the searching code holds no second copy of it.
const MASKED_MARKER: [u8; MARKER_LEN] = mask(*b"\0RMM-AGENT-VERSION-SLOT\x01");
const MASK: u8 = 0x5a;

const fn mask(bytes: [u8; MARKER_LEN]) -> [u8; MARKER_LEN] {
    let mut out = [0u8; MARKER_LEN];
    let mut i = 0;
    while i < MARKER_LEN {
        out[i] = bytes[i] ^ MASK;
        i += 1;
    }
    out
}

const fn slot() -> [u8; MARKER_LEN + VERSION_CAPACITY] {
    let marker = mask(MASKED_MARKER);
    let mut out = [0u8; MARKER_LEN + VERSION_CAPACITY];
    let mut i = 0;
    while i < MARKER_LEN {
        out[i] = marker[i];
        i += 1;
    }
    out
}

/// The slot in the binary. `#[used]` keeps it even though only [`version`] reads it.
#[used]
static SLOT: [u8; MARKER_LEN + VERSION_CAPACITY] = slot();

/// The running agent's version: the stamped one, else `CARGO_PKG_VERSION`.
pub fn version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        // SAFETY: SLOT is a valid, aligned, immutable static of this type.
        let slot = unsafe { std::ptr::read_volatile(&raw const SLOT) };
        match parse_slot(&slot[MARKER_LEN..]) {
            Some(v) => v.to_owned(),
            None => env!("CARGO_PKG_VERSION").to_owned(),
        }
    })
}

/// The version written in a slot's version bytes; `None` when empty or not a valid version.
fn parse_slot(bytes: &[u8]) -> Option<&str> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = std::str::from_utf8(&bytes[..end]).ok()?;
    check_version(text).ok().map(|()| text)
}

/// A version as stamped and as offered: 1 to 63 characters of `[0-9A-Za-z.+-]`.
pub fn check_version(v: &str) -> Result<(), String> {
    if v.is_empty() || v.len() >= VERSION_CAPACITY {
        return Err(format!(
            "version {v:?} must have 1 to {} characters",
            VERSION_CAPACITY - 1
        ));
    }
    if !v
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-'))
    {
        return Err(format!(
            "version {v:?} may only contain letters, digits, '.', '+' and '-'"
        ));
    }
    Ok(())
}

/// Writes `version` into the one slot of `binary` (the bytes of an `rmm-agent` executable).
///
/// # Errors
/// An invalid version, or not exactly one slot in `binary`.
pub fn stamp(binary: &mut [u8], version: &str) -> Result<(), String> {
    check_version(version)?;
    // Unmasked at run time: a folded constant would be a second marker in the binary.
    let marker = mask(std::hint::black_box(MASKED_MARKER));
    let mut found = binary
        .windows(MARKER_LEN)
        .enumerate()
        .filter(|(_, w)| *w == marker)
        .map(|(i, _)| i);
    let at = found
        .next()
        .ok_or("no version slot found: not an rmm-agent binary")?;
    if found.next().is_some() {
        return Err("more than one version slot found; refusing to guess".into());
    }
    let start = at + MARKER_LEN;
    let area = binary
        .get_mut(start..start + VERSION_CAPACITY)
        .ok_or("the version slot is truncated")?;
    area.fill(0);
    area[..version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

/// The version stamped in `binary`, `None` if its slot is empty.
pub fn stamped(binary: &[u8]) -> Option<String> {
    let marker = mask(std::hint::black_box(MASKED_MARKER));
    let at = binary.windows(MARKER_LEN).position(|w| w == marker)?;
    let area = binary.get(at + MARKER_LEN..at + MARKER_LEN + VERSION_CAPACITY)?;
    parse_slot(area).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstamped_is_the_package_version() {
        assert_eq!(version(), env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn stamps_a_copy_of_the_slot() {
        let mut image = b"head".to_vec();
        image.extend_from_slice(&slot());
        image.extend_from_slice(b"tail");
        assert_eq!(stamped(&image), None);
        stamp(&mut image, "2.0.0-rc.1+b7").unwrap();
        assert_eq!(stamped(&image).as_deref(), Some("2.0.0-rc.1+b7"));
        stamp(&mut image, "3").unwrap();
        assert_eq!(stamped(&image).as_deref(), Some("3"), "shorter overwrites");
        assert!(image.ends_with(b"tail"));
        assert!(stamp(&mut image, "bad version").is_err());
        assert!(stamp(&mut image, &"9".repeat(64)).is_err());
        let mut twice = image.clone();
        twice.extend_from_slice(&slot());
        assert!(stamp(&mut twice, "1")
            .unwrap_err()
            .contains("more than one"));
        assert!(stamp(&mut b"nothing here".to_vec(), "1").is_err());
    }
}
