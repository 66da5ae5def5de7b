//! `rmm-control-plane release keygen|sign|verify`, run as the real binary: a round trip, and
//! every kind of tampering or bad input refused with a clear message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest as _, Sha256};

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(format!("rmm-release-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn release(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmm-control-plane"))
        .arg("release")
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run rmm-control-plane")
}

fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "expected success; stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "expected failure; stdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    stderr
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A key pair in `dir/keys` and a signed 3 MiB build `dir/build` (+ `build.sig`).
fn signed_build(dir: &TempDir) -> (PathBuf, PathBuf, PathBuf, PathBuf, Vec<u8>) {
    let keys = dir.path("keys");
    ok(&release(&["keygen", "--out", s(&keys)]));
    let build = dir.path("build");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&build, &data).unwrap();
    let key = keys.join("release-signing.key");
    let stdout = ok(&release(&["sign", "--key", s(&key), "--file", s(&build)]));
    let sha = hex::encode(Sha256::digest(&data));
    assert!(stdout.contains(&format!("sha256: {sha}")), "{stdout}");
    assert!(stdout.contains("signature: rmm-ed25519-sig:"), "{stdout}");
    let sig = dir.path("build.sig");
    assert!(sig.exists(), "default signature path is BUILD.sig");
    (keys.join("release-signing.pub"), key, build, sig, data)
}

fn verify(public: &Path, build: &Path, sig: &Path) -> Output {
    release(&[
        "verify",
        "--public-key",
        s(public),
        "--file",
        s(build),
        "--signature",
        s(sig),
    ])
}

#[test]
fn keygen_sign_verify_round_trip() {
    let dir = TempDir::new();
    let (public, _key, build, sig, data) = signed_build(&dir);
    let stdout = ok(&verify(&public, &build, &sig));
    assert!(stdout.starts_with("OK: "), "{stdout}");
    assert!(
        stdout.contains(&hex::encode(Sha256::digest(&data))),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&public).unwrap();
    assert!(text.starts_with("rmm-ed25519-public:"), "{text}");
}

#[test]
fn tampered_builds_are_refused() {
    let dir = TempDir::new();
    let (public, _key, build, sig, data) = signed_build(&dir);

    let mut flipped = data.clone();
    flipped[1_234_567] ^= 0x01;
    let truncated = &data[..data.len() - 1];
    let mut appended = data.clone();
    appended.extend_from_slice(b"\0");
    for (name, bytes) in [
        ("flipped byte", flipped.as_slice()),
        ("truncated", truncated),
        ("appended", appended.as_slice()),
        ("empty", &[][..]),
    ] {
        std::fs::write(&build, bytes).unwrap();
        let stderr = fails(&verify(&public, &build, &sig));
        assert!(
            stderr.contains("does not verify") && stderr.contains("verification FAILED"),
            "{name}: {stderr}"
        );
        assert!(
            stderr.contains(&hex::encode(Sha256::digest(bytes))),
            "{name}: the message names the sha256 actually checked: {stderr}"
        );
    }
    // The original still verifies: the refusals were about the content.
    std::fs::write(&build, &data).unwrap();
    ok(&verify(&public, &build, &sig));
}

#[test]
fn wrong_key_is_refused_and_any_trusted_key_may_match() {
    let dir = TempDir::new();
    let (public, _key, build, sig, _) = signed_build(&dir);
    let other = dir.path("other");
    ok(&release(&["keygen", "--out", s(&other)]));
    let other_pub = other.join("release-signing.pub");
    let stderr = fails(&verify(&other_pub, &build, &sig));
    assert!(stderr.contains("verification FAILED"), "{stderr}");

    // Key rotation: trusting both keys accepts a build signed by either.
    ok(&release(&[
        "verify",
        "--public-key",
        s(&other_pub),
        "--public-key",
        s(&public),
        "--file",
        s(&build),
        "--signature",
        s(&sig),
    ]));
}

#[test]
fn malformed_keys_and_signatures_are_refused_clearly() {
    let dir = TempDir::new();
    let (public, key, build, sig, _) = signed_build(&dir);
    let good_sig = std::fs::read_to_string(&sig).unwrap();
    let good_pub = std::fs::read_to_string(&public).unwrap();

    // Signature: truncated base64, wrong prefix, flipped signature byte.
    std::fs::write(&sig, &good_sig.trim()[..good_sig.trim().len() - 8]).unwrap();
    let stderr = fails(&verify(&public, &build, &sig));
    assert!(
        stderr.contains("signature in") && stderr.contains("malformed"),
        "{stderr}"
    );
    std::fs::write(&sig, good_pub.as_bytes()).unwrap();
    let stderr = fails(&verify(&public, &build, &sig));
    assert!(stderr.contains("rmm-ed25519-sig:"), "{stderr}");
    let mut raw = base64_decode(good_sig.trim().strip_prefix("rmm-ed25519-sig:").unwrap());
    raw[10] ^= 0x80;
    std::fs::write(&sig, format!("rmm-ed25519-sig:{}", base64_encode(&raw))).unwrap();
    let stderr = fails(&verify(&public, &build, &sig));
    assert!(stderr.contains("verification FAILED"), "{stderr}");
    std::fs::write(&sig, &good_sig).unwrap();

    // Public key: garbage, a private key given instead, wrong length.
    let bad_pub = dir.path("bad.pub");
    std::fs::write(&bad_pub, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5").unwrap();
    let stderr = fails(&verify(&bad_pub, &build, &sig));
    assert!(
        stderr.contains("public key in") && stderr.contains("rmm-ed25519-public:"),
        "{stderr}"
    );
    let stderr = fails(&verify(&key, &build, &sig));
    assert!(stderr.contains("public key in"), "{stderr}");
    std::fs::write(&bad_pub, "rmm-ed25519-public:AAAA").unwrap();
    let stderr = fails(&verify(&bad_pub, &build, &sig));
    assert!(stderr.contains("expected 32 bytes"), "{stderr}");

    // Private key: malformed content is refused by sign.
    let bad_key = dir.path("bad.key");
    write_private(&bad_key, "rmm-ed25519-secret:not base64!");
    let stderr = fails(&release(&[
        "sign",
        "--key",
        s(&bad_key),
        "--file",
        s(&build),
    ]));
    assert!(
        stderr.contains("private key in") && stderr.contains("base64"),
        "{stderr}"
    );

    // Missing files are named.
    let missing = dir.path("nope");
    let stderr = fails(&verify(&public, &missing, &sig));
    assert!(stderr.contains(s(&missing)), "{stderr}");
}

#[cfg(unix)]
#[test]
fn key_file_modes() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = TempDir::new();
    let keys = dir.path("keys");
    ok(&release(&["keygen", "--out", s(&keys)]));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let key = keys.join("release-signing.key");
    assert_eq!(mode(&key), 0o600, "private key");
    assert_eq!(
        mode(&keys.join("release-signing.pub")) & 0o600,
        0o600,
        "public key readable"
    );

    // Never overwrites an existing key pair.
    let before = std::fs::read(&key).unwrap();
    let stderr = fails(&release(&["keygen", "--out", s(&keys)]));
    assert!(stderr.contains("already exists"), "{stderr}");
    assert_eq!(std::fs::read(&key).unwrap(), before);

    // A private key readable by others is refused, like ssh does.
    let build = dir.path("b");
    std::fs::write(&build, b"x").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = fails(&release(&["sign", "--key", s(&key), "--file", s(&build)]));
    assert!(stderr.contains("chmod 600"), "{stderr}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    ok(&release(&["sign", "--key", s(&key), "--file", s(&build)]));
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
