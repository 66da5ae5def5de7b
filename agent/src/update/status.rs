//! What the agent reports about its own package (`PackageStatuses["rmm-agent"]`), and the two
//! small files in the state directory that carry it across `exec` and restarts:
//!
//! - `update-result.json` ([`Record`]): the last update's phase and outcome, written before
//!   every `exec` of the update path and read at start.
//! - `update-failed.json` ([`FailedList`]): `(version, sha256)` pairs that failed or were rolled
//!   back, never tried again unless the server offers something different: another build, or the
//!   same build in an offer that differs otherwise (its package hash covers URL and signature),
//!   which is how a server forces a retry.

use std::path::Path;

use rmm_opamp::proto::{PackageStatus, PackageStatusEnum, PackageStatuses};
use serde::{Deserialize, Serialize};

use super::verify::hex;
use super::PACKAGE;

pub const RESULT_FILE: &str = "update-result.json";
pub const FAILED_FILE: &str = "update-failed.json";
/// Failed pairs kept (oldest dropped first).
const FAILED_KEEP: usize = 32;

/// What the server offered, as kept on disk (bytes as hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    pub version: String,
    /// SHA-256 of the build (`content_hash`).
    pub sha256: String,
    /// `PackageAvailable.hash`.
    pub package_hash: String,
    /// `PackagesAvailable.all_packages_hash`.
    pub all_packages_hash: String,
}

/// The last update, by phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Record {
    /// The new build is at the executable path and on trial (written before the swap).
    Trial {
        offered: Offered,
        previous_version: String,
    },
    /// The new build was healthy and is running.
    Installed { offered: Offered },
    /// The new build failed its trial; the previous one was restored.
    RolledBack { offered: Offered, reason: String },
    /// Failed after the agent stopped its work but before anything was swapped.
    Failed { offered: Offered, reason: String },
}

impl Record {
    pub fn offered(&self) -> &Offered {
        match self {
            Self::Trial { offered, .. }
            | Self::Installed { offered }
            | Self::RolledBack { offered, .. }
            | Self::Failed { offered, .. } => offered,
        }
    }

    pub fn load(dir: &Path) -> Option<Self> {
        let text = std::fs::read(dir.join(RESULT_FILE)).ok()?;
        match serde_json::from_slice(&text) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, file = RESULT_FILE, "Ignoring an unreadable update record.");
                None
            }
        }
    }

    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec_pretty(self).expect("records serialise");
        crate::control::identity::write_private(&dir.join(RESULT_FILE), &json, 0o600)
            .map_err(std::io::Error::other)
    }
}

/// A failed `(version, sha256)` pair, the offer it came in, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub version: String,
    pub sha256: String,
    /// `PackageAvailable.hash` of the failed offer (empty: any offer of the pair).
    #[serde(default)]
    pub package_hash: String,
    pub reason: String,
}

/// `update-failed.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedList {
    pub failed: Vec<Failed>,
}

impl FailedList {
    pub fn load(dir: &Path) -> Self {
        std::fs::read(dir.join(FAILED_FILE))
            .ok()
            .and_then(|t| serde_json::from_slice(&t).ok())
            .unwrap_or_default()
    }

    /// Why this offer of a pair failed before, if it did.
    pub fn find(&self, offered: &Offered) -> Option<&Failed> {
        self.failed.iter().find(|f| {
            f.version == offered.version
                && f.sha256 == offered.sha256
                && (f.package_hash.is_empty() || f.package_hash == offered.package_hash)
        })
    }

    /// Adds (or refreshes) a pair and saves the list.
    pub fn remember(dir: &Path, offered: &Offered, reason: &str) {
        let mut list = Self::load(dir);
        list.failed
            .retain(|f| !(f.version == offered.version && f.sha256 == offered.sha256));
        list.failed.push(Failed {
            version: offered.version.clone(),
            sha256: offered.sha256.clone(),
            package_hash: offered.package_hash.clone(),
            reason: reason.to_owned(),
        });
        if list.failed.len() > FAILED_KEEP {
            list.failed.drain(..list.failed.len() - FAILED_KEEP);
        }
        let json = serde_json::to_vec_pretty(&list).expect("serialises");
        if let Err(e) =
            crate::control::identity::write_private(&dir.join(FAILED_FILE), &json, 0o600)
        {
            tracing::warn!(error = %e, "Could not remember a failed update.");
        }
    }
}

/// One status of the agent's package.
pub fn statuses(
    offered: Option<&Offered>,
    state: PackageStatusEnum,
    error: &str,
) -> PackageStatuses {
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len() / 2)
            .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
            .collect()
    };
    let status = PackageStatus {
        name: PACKAGE.into(),
        agent_has_version: crate::version().to_owned(),
        // OpAMP: the `PackageAvailable.hash` of what the agent has, known when it is the
        // offered build.
        agent_has_hash: offered
            .filter(|o| state == PackageStatusEnum::Installed && o.version == crate::version())
            .map(|o| unhex(&o.package_hash))
            .unwrap_or_default(),
        server_offered_version: offered.map(|o| o.version.clone()).unwrap_or_default(),
        server_offered_hash: offered.map(|o| unhex(&o.package_hash)).unwrap_or_default(),
        status: state as i32,
        error_message: error.to_owned(),
        download_details: None,
    };
    PackageStatuses {
        packages: [(PACKAGE.to_owned(), status)].into(),
        server_provided_all_packages_hash: offered
            .map(|o| unhex(&o.all_packages_hash))
            .unwrap_or_default(),
        error_message: String::new(),
    }
}

/// The status at start, from the last update's record.
pub fn at_start(record: Option<&Record>, in_trial: bool) -> PackageStatuses {
    use PackageStatusEnum as S;
    match record {
        None => statuses(None, S::Installed, ""),
        Some(Record::Installed { offered }) if offered.version == crate::version() => {
            statuses(Some(offered), S::Installed, "")
        }
        // Replaced by hand since: just what runs.
        Some(Record::Installed { .. }) => statuses(None, S::Installed, ""),
        Some(Record::RolledBack { offered, reason }) => statuses(
            Some(offered),
            S::InstallFailed,
            &format!("rolled back: {reason}"),
        ),
        Some(Record::Failed { offered, reason }) => {
            statuses(Some(offered), S::InstallFailed, reason)
        }
        Some(Record::Trial { offered, .. }) if in_trial => {
            statuses(Some(offered), S::Installing, "")
        }
        // An interrupted trial that recovery did not turn into a result.
        Some(Record::Trial { offered, .. }) => statuses(
            Some(offered),
            S::InstallFailed,
            "the update was interrupted (the agent restarted during the trial)",
        ),
    }
}

/// An `Offered` from the wire values.
pub fn offered(
    version: &str,
    sha256: &[u8],
    package_hash: &[u8],
    all_packages_hash: &[u8],
) -> Offered {
    Offered {
        version: version.to_owned(),
        sha256: hex(sha256),
        package_hash: hex(package_hash),
        all_packages_hash: hex(all_packages_hash),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &str) -> Offered {
        offered(v, &[1; 32], &[2; 32], &[3; 32])
    }

    #[test]
    fn records_round_trip_and_map_to_statuses() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(Record::load(tmp.path()), None);
        let r = Record::RolledBack {
            offered: o("9.9.9"),
            reason: "new version exited with status 1 after 0.2 s".into(),
        };
        r.save(tmp.path()).unwrap();
        assert_eq!(Record::load(tmp.path()).as_ref(), Some(&r));
        let s = &at_start(Some(&r), false).packages[PACKAGE];
        assert_eq!(s.status, PackageStatusEnum::InstallFailed as i32);
        assert_eq!(
            s.error_message,
            "rolled back: new version exited with status 1 after 0.2 s"
        );
        assert_eq!(s.agent_has_version, crate::version());
        assert_eq!(s.server_offered_version, "9.9.9");
        assert_eq!(s.server_offered_hash, vec![2; 32]);
        let installed = Record::Installed {
            offered: o(crate::version()),
        };
        let s = at_start(Some(&installed), false);
        assert_eq!(
            s.packages[PACKAGE].status,
            PackageStatusEnum::Installed as i32
        );
        assert_eq!(s.server_provided_all_packages_hash, vec![3; 32]);
        assert_eq!(s.packages[PACKAGE].agent_has_hash, vec![2; 32]);
        let plain = &at_start(None, false).packages[PACKAGE];
        assert_eq!(plain.status, PackageStatusEnum::Installed as i32);
        assert_eq!(plain.server_offered_version, "");
    }

    #[test]
    fn failed_pairs_are_remembered_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        FailedList::remember(tmp.path(), &o("2.0.0"), "rolled back: x");
        let list = FailedList::load(tmp.path());
        assert_eq!(list.find(&o("2.0.0")).unwrap().reason, "rolled back: x");
        let other_build = offered("2.0.0", &[9; 32], &[2; 32], &[3; 32]);
        assert!(list.find(&other_build).is_none(), "other build");
        let forced = offered("2.0.0", &[1; 32], &[4; 32], &[3; 32]);
        assert!(list.find(&forced).is_none(), "same build, another offer");
        for i in 0..40 {
            FailedList::remember(tmp.path(), &o(&format!("3.0.{i}")), "r");
        }
        let list = FailedList::load(tmp.path());
        assert_eq!(list.failed.len(), FAILED_KEEP);
        assert!(list.find(&o("2.0.0")).is_none(), "oldest dropped");
    }
}
