//! Signing keys reserved by `com.atproto.server.reserveSigningKey` ahead of `createAccount`.
//!
//! They are kept as files, not rows in `account.sqlite`, exactly where the reference keeps them:
//! `<actors dir>/reserved_keys/<did or did:key>`, 32 raw secp256k1 bytes, owner-readable only.
//! Files keep private keys out of the account database (which is copied and inspected far more
//! often than key material should be), sit next to the per-account `key` files they become, and
//! let a reference data directory be taken over as is.
//!
//! Invariant: a reserved key is never overwritten; reserving again under the same name returns
//! the key already reserved, so a retried request hands out the same key.

use crate::crypto::{Curve, Keypair};
use crate::store::StoreError;
use crate::syntax::Did;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where the reserved key named `name` (a DID or a `did:key`) lives.
pub fn reserved_key_path(actors_dir: &Path, name: &Did) -> PathBuf {
    // DID syntax has no `/`, and a whole DID is one path component, so `name` cannot escape
    // the directory.
    actors_dir.join("reserved_keys").join(name.as_str())
}

/// Reserves a fresh secp256k1 key under `name`, or returns the one already reserved there.
pub fn reserve(actors_dir: &Path, name: &Did) -> Result<Keypair, StoreError> {
    let path = reserved_key_path(actors_dir, name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let key = Keypair::generate(Curve::K256);
    // Write a private temporary file, then hard-link it into place: the link either appears
    // complete or fails because a key is already there, so no reader sees a half-written key.
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.as_str(),
        data_encoding::HEXLOWER.encode(&rand::random::<[u8; 8]>())
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(&key.private_bytes())?;
        file.sync_all()
    });
    let linked = written.and_then(|()| std::fs::hard_link(&tmp, &path));
    // The temporary name is never needed again, whatever happened.
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => read(&path),
        Err(e) => Err(e.into()),
    }
}

/// The key reserved under `name`, if any.
pub fn get(actors_dir: &Path, name: &Did) -> Result<Option<Keypair>, StoreError> {
    let path = reserved_key_path(actors_dir, name);
    match read(&path) {
        Ok(key) => Ok(Some(key)),
        Err(StoreError::Io(e)) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Forgets the key reserved under `name` (after account creation used it). Absent is fine.
pub fn remove(actors_dir: &Path, name: &Did) -> Result<(), StoreError> {
    match std::fs::remove_file(reserved_key_path(actors_dir, name)) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

fn read(path: &Path) -> Result<Keypair, StoreError> {
    let bytes = std::fs::read(path)?;
    Keypair::from_private_bytes(Curve::K256, &bytes)
        .map_err(|e| StoreError::Corrupt(format!("{}: {e}", path.display())))
}
