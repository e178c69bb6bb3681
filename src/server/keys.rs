//! The server's lasting keys, kept in its state directory so that a restarted server has
//! the same certificate (clients pin its fingerprint) and the same join secret (tokens an
//! app backend minted stay good): `server.cert.pem`, `server.key.pem`, `join-secret.hex`,
//! made at the first start, readable by the owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::net::tls::HostIdentity;
use crate::proto::token::JoinSecret;

/// File of the certificate chain (PEM).
pub const CERT_FILE: &str = "server.cert.pem";
/// File of the certificate's private key (PEM).
pub const KEY_FILE: &str = "server.key.pem";
/// File of the join secret (64 hex digits).
pub const SECRET_FILE: &str = "join-secret.hex";

/// The server's certificate and join secret.
pub struct Keys {
    /// The certificate clients pin.
    pub identity: HostIdentity,
    /// The secret join tokens are minted with.
    pub secret: JoinSecret,
    /// Whether they were made now (a first start), not read.
    pub created: bool,
}

/// Reads the keys from `dir`, or makes them (with the directory) when none are there. A
/// directory with only some of the files, or a damaged one, is an error naming the file:
/// a server that quietly made new keys would lock every client out.
pub fn load_or_create(dir: &Path) -> Result<Keys, String> {
    let (cert, key, secret) = (
        dir.join(CERT_FILE),
        dir.join(KEY_FILE),
        dir.join(SECRET_FILE),
    );
    let present = [&cert, &key, &secret].map(|p| p.exists());
    if present.iter().all(|&p| p) {
        let read = |p: &Path| {
            fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
        };
        let identity = HostIdentity::from_pem(&read(&cert)?, &read(&key)?)
            .map_err(|e| format!("{} and {}: {e}", cert.display(), key.display()))?;
        let secret = JoinSecret::from_hex(&read(&secret)?)
            .map_err(|e| format!("{}: {e}", secret.display()))?;
        return Ok(Keys {
            identity,
            secret,
            created: false,
        });
    }
    if present.iter().any(|&p| p) {
        let missing: Vec<String> = [&cert, &key, &secret]
            .iter()
            .zip(present)
            .filter(|(_, p)| !p)
            .map(|(f, _)| f.display().to_string())
            .collect();
        return Err(format!(
            "the state directory {} holds some of the server's keys but not {}: restore them, or remove all three to make new ones (clients then need the new fingerprint and tokens)",
            dir.display(),
            missing.join(", ")
        ));
    }
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let identity = HostIdentity::self_signed(&["localhost".to_owned()])
        .map_err(|e| format!("cannot make the server certificate: {e}"))?;
    let secret_value = JoinSecret::try_generate().map_err(|e| e.to_string())?;
    let (cert_pem, key_pem) = identity.to_pem();
    write_private(&key, key_pem.as_bytes())?;
    write_private(&cert, cert_pem.as_bytes())?;
    write_private(&secret, secret_value.to_hex().as_bytes())?;
    Ok(Keys {
        identity,
        secret: secret_value,
        created: true,
    })
}

/// File whose lock says a server owns the state directory.
pub const LOCK_FILE: &str = "serve.lock";

/// The state directory held for this process: two servers writing one room would share
/// its temporary file and overwrite each other's saves. The lock is the operating
/// system's (released when the process ends, however it ends); the file holds the owner's
/// process id, for the message a second server gives.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
}

/// Takes `dir`'s lock (creating the directory), or says which process holds it.
pub fn lock_dir(dir: &Path) -> Result<DirLock, String> {
    fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create the state directory {}: {e}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            return Err(format!(
                "the state directory {} is in use by another theta serve (process {}): one server per state directory",
                dir.display(),
                holder.trim()
            ));
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(format!("cannot lock {}: {e}", path.display()));
        }
    }
    // Who holds it, for a second server's message (the lock itself is what counts).
    file.set_len(0)
        .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(DirLock { _file: file })
}

/// Writes a new file readable by its owner only (on Unix), synced.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_once_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let made = load_or_create(dir.path()).unwrap();
        assert!(made.created);
        let read = load_or_create(dir.path()).unwrap();
        assert!(!read.created);
        assert_eq!(read.identity.fingerprint(), made.identity.fingerprint());
        assert_eq!(read.secret, made.secret);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(dir.path().join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_state_directory_is_held_by_one_server_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_dir(dir.path()).unwrap();
        let err = lock_dir(dir.path()).unwrap_err();
        assert!(err.contains("is in use by another theta serve"), "{err}");
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        assert!(lock_dir(dir.path()).is_ok(), "free again once released");
    }

    #[test]
    fn a_partial_or_damaged_set_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path()).unwrap();
        fs::remove_file(dir.path().join(SECRET_FILE)).unwrap();
        let err = load_or_create(dir.path()).err().unwrap();
        assert!(
            err.contains("join-secret.hex") && err.contains("restore them"),
            "{err}"
        );
        fs::write(dir.path().join(SECRET_FILE), "zz").unwrap();
        let err = load_or_create(dir.path()).err().unwrap();
        assert!(
            err.contains("join-secret.hex") && err.contains("invalid join secret"),
            "{err}"
        );
    }
}
