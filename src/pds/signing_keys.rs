//! `reserveSigningKey`: a secp256k1 key kept aside for a later `createAccount`.

use super::Pds;
use crate::account::reserved_keys;
use crate::crypto::{Curve, Keypair};
use crate::syntax::Did;
use crate::xrpc::XrpcError;
use std::io::Write;
use std::path::Path;

impl Pds {
    /// Reserves a key under `did` (the same key again for the same DID), or, with no DID, a
    /// fresh key stored under its own `did:key`, as the reference. Returns the `did:key`.
    pub async fn reserve_signing_key(&self, did: Option<Did>) -> Result<String, XrpcError> {
        let actors = self.actors_dir.clone();
        tokio::task::spawn_blocking(move || -> Result<String, XrpcError> {
            let key = match did {
                Some(did) => reserved_keys::reserve(&actors, &did)
                    .map_err(|e| XrpcError::internal(format!("reserving a key: {e}")))?,
                None => reserve_anonymous(&actors)?,
            };
            Ok(key.public_key().to_did_key())
        })
        .await
        .map_err(|e| XrpcError::internal(format!("key task failed: {e}")))?
    }
}

/// A fresh key filed under its own `did:key`. The name is new and unknown to anyone until it
/// is returned, so a plain exclusive create is enough.
fn reserve_anonymous(actors: &Path) -> Result<Keypair, XrpcError> {
    let key = Keypair::generate(Curve::K256);
    let name: Did = key
        .public_key()
        .to_did_key()
        .parse()
        .map_err(|_| XrpcError::internal("a did:key did not parse as a DID"))?;
    let path = reserved_keys::reserved_key_path(actors, &name);
    let io = |e: std::io::Error| XrpcError::internal(format!("reserving a key: {e}"));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io)?;
    file.write_all(&key.private_bytes())
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(key)
}
