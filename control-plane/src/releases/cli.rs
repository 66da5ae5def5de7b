//! `rmm-control-plane release …`: key generation, offline signing and verification of agent
//! builds. None of these touch the database or the network.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Subcommand;

use super::signing::{self, PublicKey, ReleaseSignature, SecretKey};

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Generate an Ed25519 release signing key pair in DIR: release-signing.key (private,
    /// mode 0600; keep it offline) and release-signing.pub (give it to the control plane).
    Keygen {
        /// Directory to write the key pair into (created if missing; existing keys are never
        /// overwritten).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign an agent build offline: prints its SHA-256 and the signature and writes the
    /// signature file.
    Sign {
        /// Private key file written by `release keygen` (must be mode 0600).
        #[arg(long, value_name = "PRIVATE")]
        key: PathBuf,
        /// The build to sign.
        #[arg(long, value_name = "BUILD")]
        file: PathBuf,
        /// Where to write the signature; default: BUILD.sig.
        #[arg(long, value_name = "SIG")]
        out: Option<PathBuf>,
    },
    /// Check a build against a signature and trusted public key(s); exits non-zero if it does
    /// not verify.
    Verify {
        /// Public key file; repeat to trust several keys (key rotation).
        #[arg(long, value_name = "PUB", required = true)]
        public_key: Vec<PathBuf>,
        /// The build to check.
        #[arg(long, value_name = "BUILD")]
        file: PathBuf,
        /// Signature file written by `release sign`.
        #[arg(long, value_name = "SIG")]
        signature: PathBuf,
    },
}

/// Run one `release` subcommand.
pub fn run(command: ReleaseCommand) -> anyhow::Result<()> {
    match command {
        ReleaseCommand::Keygen { out } => keygen(&out),
        ReleaseCommand::Sign { key, file, out } => sign(&key, &file, out),
        ReleaseCommand::Verify {
            public_key,
            file,
            signature,
        } => verify(&public_key, &file, &signature),
    }
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = SecretKey::generate();
    let (secret, public) = signing::write_keypair(out, &key)?;
    println!("key-id: {}", key.public().key_id());
    println!(
        "private key: {} (mode 0600; keep it offline)",
        secret.display()
    );
    println!("public key: {}", public.display());
    println!("{}", key.public().encode());
    Ok(())
}

fn sign(key: &Path, file: &Path, out: Option<PathBuf>) -> anyhow::Result<()> {
    let key = SecretKey::read(key)?;
    let digest = signing::sha256_file(file)?;
    let sig = key.sign_digest(&digest);
    // Cheap self-check: never hand out a signature our own public key rejects.
    key.public()
        .verify_digest(&digest, &sig)
        .context("internal error: the fresh signature does not verify")?;
    let out = out.unwrap_or_else(|| {
        let mut p = file.as_os_str().to_owned();
        p.push(".sig");
        PathBuf::from(p)
    });
    std::fs::write(&out, format!("{}\n", sig.encode()))
        .with_context(|| format!("cannot write the signature to {}", out.display()))?;
    println!("sha256: {}", hex::encode(digest));
    println!("key-id: {}", key.public().key_id());
    println!("signature: {}", sig.encode());
    println!("wrote {}", out.display());
    Ok(())
}

fn verify(public_keys: &[PathBuf], file: &Path, signature: &Path) -> anyhow::Result<()> {
    let keys = public_keys
        .iter()
        .map(|p| PublicKey::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let sig = ReleaseSignature::read(signature)?;
    let digest = signing::sha256_file(file)?;
    let key = signing::verify_with_any(&keys, &digest, &sig)
        .with_context(|| format!("{} does not verify", file.display()))?;
    println!(
        "OK: {} (sha256 {}) is signed by key {}",
        file.display(),
        hex::encode(digest),
        key.key_id()
    );
    Ok(())
}
