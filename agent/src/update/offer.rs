//! What to do with a `PackagesAvailable`: checked before anything is downloaded.

use rmm_opamp::proto::PackagesAvailable;
use rmm_opamp::typed::PackageKind;

use super::status::{offered, FailedList, Offered};
use super::verify::{ReleaseKey, VerifyError};
use super::PACKAGE;

/// An offer worth downloading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub offered: Offered,
    pub url: String,
    pub content_hash: [u8; 32],
    pub signature: Vec<u8>,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No `rmm-agent` package in the offer.
    NotForUs,
    /// The offered version is the running one.
    Running(Offered),
    /// This exact build failed before; the reason is reported again.
    FailedBefore(Offered, String),
    /// Refused without downloading.
    Refuse(Offered, String),
    Fetch(Offer),
}

pub fn decide(p: &PackagesAvailable, keys: &[ReleaseKey], failed: &FailedList) -> Decision {
    let Some(pkg) = p.packages.get(PACKAGE) else {
        return Decision::NotForUs;
    };
    let file = pkg.file.clone().unwrap_or_default();
    let o = offered(
        &pkg.version,
        &file.content_hash,
        &pkg.hash,
        &p.all_packages_hash,
    );
    if pkg.version == crate::version() {
        return Decision::Running(o);
    }
    if let Some(f) = failed.find(&o) {
        return Decision::FailedBefore(o.clone(), f.reason.clone());
    }
    let refuse = |why: String| Decision::Refuse(o.clone(), why);
    if pkg.kind() != PackageKind::TopLevel {
        return refuse(format!(
            "package {PACKAGE:?} must be a top-level package, got type {}",
            pkg.r#type
        ));
    }
    if let Err(e) = crate::version::check_version(&pkg.version) {
        return refuse(format!("invalid offer: {e}"));
    }
    if pkg.file.is_none() || file.download_url.trim().is_empty() {
        return refuse("invalid offer: no download URL".into());
    }
    let Ok(content_hash) = <[u8; 32]>::try_from(file.content_hash.as_slice()) else {
        return refuse(format!(
            "invalid offer: content_hash has {} bytes, a SHA-256 has 32",
            file.content_hash.len()
        ));
    };
    if file.signature.len() != 64 {
        return refuse(format!(
            "invalid offer: signature has {} bytes, an Ed25519 signature has 64",
            file.signature.len()
        ));
    }
    if keys.is_empty() {
        return refuse(VerifyError::NoKeys.to_string());
    }
    Decision::Fetch(Offer {
        offered: o,
        url: file.download_url.trim().to_owned(),
        content_hash,
        signature: file.signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmm_opamp::proto::{DownloadableFile, PackageAvailable, PackageType};

    fn offer(version: &str, hash_len: usize, sig_len: usize) -> PackagesAvailable {
        let mut file =
            DownloadableFile::new("http://cp/api/v1/releases/1/build", vec![7; hash_len]);
        file.signature = vec![1; sig_len];
        PackagesAvailable::new([(
            PACKAGE,
            PackageAvailable::new(PackageType::TopLevel, version, file),
        )])
    }

    fn key() -> ReleaseKey {
        ReleaseKey::parse("rmm-ed25519-public:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
            .unwrap()
    }

    #[test]
    fn decisions() {
        let none = FailedList::default();
        let k = [key()];
        assert_eq!(
            decide(&PackagesAvailable::default(), &k, &none),
            Decision::NotForUs
        );
        assert!(matches!(
            decide(&offer(crate::version(), 32, 64), &k, &none),
            Decision::Running(_)
        ));
        let Decision::Fetch(f) = decide(&offer("99.0.0", 32, 64), &k, &none) else {
            panic!()
        };
        assert_eq!(f.content_hash, [7; 32]);
        assert_eq!(f.offered.version, "99.0.0");
        let reason = |d: Decision| match d {
            Decision::Refuse(_, r) => r,
            other => panic!("{other:?}"),
        };
        assert!(reason(decide(&offer("99.0.0", 32, 64), &[], &none))
            .starts_with("no pinned release keys"));
        assert!(reason(decide(&offer("99.0.0", 31, 64), &k, &none)).contains("content_hash"));
        assert!(reason(decide(&offer("99.0.0", 32, 0), &k, &none)).contains("signature"));
        assert!(reason(decide(&offer("9 9", 32, 64), &k, &none)).contains("version"));
        let tmp = tempfile::tempdir().unwrap();
        FailedList::remember(tmp.path(), &f.offered, "rolled back: boom");
        let failed = FailedList::load(tmp.path());
        assert_eq!(
            decide(&offer("99.0.0", 32, 64), &k, &failed),
            Decision::FailedBefore(f.offered.clone(), "rolled back: boom".into())
        );
        // Another build of the same version is tried.
        let mut other = offer("99.0.0", 32, 64);
        other
            .packages
            .get_mut(PACKAGE)
            .unwrap()
            .file
            .as_mut()
            .unwrap()
            .content_hash = vec![8; 32];
        assert!(matches!(decide(&other, &k, &failed), Decision::Fetch(_)));
        // The same build offered differently (here: re-signed) is a new offer: tried.
        let mut file = DownloadableFile::new("http://cp/api/v1/releases/1/build", vec![7; 32]);
        file.signature = vec![2; 64];
        let resigned = PackagesAvailable::new([(
            PACKAGE,
            PackageAvailable::new(PackageType::TopLevel, "99.0.0", file),
        )]);
        assert!(matches!(decide(&resigned, &k, &failed), Decision::Fetch(_)));
        // The same offer again is not.
        assert!(matches!(
            decide(&offer("99.0.0", 32, 64), &k, &failed),
            Decision::FailedBefore(..)
        ));
    }
}
