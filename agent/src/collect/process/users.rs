//! uid → user name, from `<etc>/passwd`, cached. The file is re-read only when a uid is not in
//! the cache and the file changed since it was last read, so steady state does no I/O.
//! (Users that only exist in LDAP/SSSD are shown by uid: the agent doesn't call into NSS.)

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::SystemTime;

pub struct UserNames {
    passwd: PathBuf,
    names: HashMap<u32, String>,
    loaded_mtime: Option<SystemTime>,
    loaded_once: bool,
}

impl UserNames {
    pub fn new(passwd: PathBuf) -> Self {
        Self {
            passwd,
            names: HashMap::new(),
            loaded_mtime: None,
            loaded_once: false,
        }
    }

    /// The user name of `uid`, or the uid as decimal text when it has none.
    pub fn name(&mut self, uid: u32) -> String {
        if !self.names.contains_key(&uid) {
            self.reload_if_changed();
        }
        self.names
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn reload_if_changed(&mut self) {
        let mtime = std::fs::metadata(&self.passwd)
            .and_then(|m| m.modified())
            .ok();
        if self.loaded_once && mtime == self.loaded_mtime {
            return;
        }
        self.loaded_once = true;
        self.loaded_mtime = mtime;
        self.names.clear();
        let Ok(text) = std::fs::read_to_string(&self.passwd) else {
            return;
        };
        for line in text.lines() {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            if let Ok(uid) = uid.parse() {
                // The first entry for a uid wins, as with getpwuid.
                self.names.entry(uid).or_insert_with(|| name.to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_caches_and_falls_back_to_uid() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "root:x:0:0:root:/root:/bin/bash\n#comment\nbroken\nalice:x:1000:1000::/home/alice:/bin/sh\nalias:x:1000:1000::/:/bin/sh\n",
        )
        .unwrap();
        let mut users = UserNames::new(passwd.clone());
        assert_eq!(users.name(0), "root");
        assert_eq!(users.name(1000), "alice");
        assert_eq!(users.name(4242), "4242");
        // A user added later is picked up once the file changes.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&passwd, "bob:x:4242:4242::/:/bin/sh\n").unwrap();
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        let f = std::fs::File::options().write(true).open(&passwd).unwrap();
        f.set_modified(later).unwrap();
        assert_eq!(users.name(4242), "bob");
    }

    #[test]
    fn missing_passwd_gives_uids() {
        let mut users = UserNames::new(PathBuf::from("/definitely/not/passwd"));
        assert_eq!(users.name(0), "0");
    }
}
