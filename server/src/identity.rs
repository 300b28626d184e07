//! The server's identity: a key and a self-signed certificate, made on the first start and
//! kept (mode 0600) so that the fingerprint clients pin stays the same.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use ferry_core::identity::Fingerprint;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The identity file's name in the user's data directory, when `--identity` names none.
pub const DEFAULT_FILE: &str = "identity.pem";

/// A server's identity, ready to serve TLS.
#[derive(Clone)]
pub struct Identity {
    /// The TLS configuration presenting it.
    pub config: Arc<ServerConfig>,
    /// What clients compare.
    pub fingerprint: Fingerprint,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.fingerprint)
    }
}

/// Where the identity is kept by default: `$XDG_DATA_HOME/ferry/identity.pem`, else
/// `~/.local/share/ferry/identity.pem`.
pub fn default_path() -> Option<PathBuf> {
    ferry_core::dirs::user_file(DEFAULT_FILE)
}

impl Identity {
    /// The identity kept in `path`, made there first if there is none; also says whether it
    /// was made now. A file others may read is refused, as ssh refuses such a key.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Identity, bool)> {
        let created = match std::fs::metadata(path) {
            Ok(_) => false,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path)?,
            Err(e) => return Err(e).with_context(|| format!("reading '{}'", path.display())),
        };
        Ok((load(path)?, created))
    }
}

/// Makes a new identity at `path`, unless another process made one first; true when this
/// one did.
fn create(path: &Path) -> anyhow::Result<bool> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating '{}'", dir.display()))?;
    }
    let made = rcgen::generate_simple_self_signed(vec!["ferryd".to_string()])
        .context("making a certificate")?;
    // A temporary beside it (created 0600), linked into place only if there is still nothing
    // there: two servers starting at once keep one identity.
    let mut temp = tempfile::Builder::new()
        .prefix(".identity-")
        .tempfile_in(dir)
        .with_context(|| format!("writing in '{}'", dir.display()))?;
    temp.write_all(made.cert.pem().as_bytes())?;
    temp.write_all(made.signing_key.serialize_pem().as_bytes())?;
    temp.as_file().sync_all()?;
    match temp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error).with_context(|| format!("writing '{}'", path.display())),
    }
}

fn load(path: &Path) -> anyhow::Result<Identity> {
    let what = || format!("identity file '{}'", path.display());
    let meta = std::fs::metadata(path).with_context(what)?;
    let me = rustix::process::geteuid().as_raw();
    if std::os::unix::fs::MetadataExt::uid(&meta) != me {
        bail!(
            "{} belongs to another user; an identity must be the server's own",
            what()
        );
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        bail!(
            "{} may be read by others (mode {:o}); make it private: chmod 600 '{}'",
            what(),
            mode & 0o777,
            path.display()
        );
    }
    let pem = std::fs::read(path).with_context(what)?;
    let cert = CertificateDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("{}: no certificate: {e}", what()))?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| anyhow::anyhow!("{}: no private key: {e}", what()))?;
    let config = ferry_core::tls::server_config(&cert, key.secret_der())
        .with_context(|| format!("{}: the key does not fit the certificate", what()))?;
    Ok(Identity {
        config,
        fingerprint: Fingerprint::of(&cert),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity.pem");
        let (first, created) = Identity::load_or_create(&path).unwrap();
        assert!(created);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = Identity::load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(first.fingerprint, again.fingerprint, "stable across starts");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Identity::load_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("may be read by others (mode 644)"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "not pem").unwrap();
        let err = format!("{:#}", Identity::load_or_create(&path).unwrap_err());
        assert!(err.contains("no certificate"), "{err}");
    }
}
