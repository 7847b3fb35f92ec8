//! Private signing keys.

use std::fmt;

use k256::ecdsa::signature::Signer as _;
use k256::elliptic_curve::Generate as _;

use super::{CryptoError, Curve, PublicKey, Signature};

/// A private signing key on one of the atproto curves.
///
/// `Debug` prints the curve and the public `did:key` only, never the secret.
#[derive(Clone)]
pub enum Keypair {
    K256(k256::ecdsa::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

impl Keypair {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate(curve: Curve) -> Keypair {
        match curve {
            Curve::K256 => Keypair::K256(k256::ecdsa::SigningKey::generate()),
            Curve::P256 => Keypair::P256(p256::ecdsa::SigningKey::generate()),
        }
    }

    /// From the 32-byte big-endian secret scalar. Exactly 32 bytes are required (the underlying
    /// crates would zero-pad shorter input, which would hide a truncated config value).
    pub fn from_private_bytes(curve: Curve, bytes: &[u8]) -> Result<Keypair, CryptoError> {
        if bytes.len() != 32 {
            return Err(CryptoError::PrivateKeyLength(bytes.len()));
        }
        let out_of_range = |_| CryptoError::PrivateKeyOutOfRange(curve);
        Ok(match curve {
            Curve::K256 => {
                Keypair::K256(k256::ecdsa::SigningKey::from_slice(bytes).map_err(out_of_range)?)
            }
            Curve::P256 => {
                Keypair::P256(p256::ecdsa::SigningKey::from_slice(bytes).map_err(out_of_range)?)
            }
        })
    }

    /// From 64 hex digits (either case), as in `PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX`.
    /// Surrounding ASCII whitespace is ignored because env files often carry a trailing newline.
    pub fn from_private_hex(curve: Curve, hex: &str) -> Result<Keypair, CryptoError> {
        let hex = hex.trim_ascii();
        if hex.len() != 64 {
            // Report the byte length the caller probably meant, without decoding junk.
            return Err(CryptoError::PrivateKeyLength(hex.len() / 2));
        }
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|_| CryptoError::PrivateKeyHex)?;
        Keypair::from_private_bytes(curve, &bytes)
    }

    /// The 32-byte big-endian secret scalar.
    pub fn private_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        match self {
            Keypair::K256(k) => out.copy_from_slice(&k.to_bytes()),
            Keypair::P256(k) => out.copy_from_slice(&k.to_bytes()),
        }
        out
    }

    /// The secret scalar as 64 lowercase hex digits.
    pub fn to_private_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.private_bytes())
    }

    pub fn curve(&self) -> Curve {
        match self {
            Keypair::K256(_) => Curve::K256,
            Keypair::P256(_) => Curve::P256,
        }
    }

    pub fn public_key(&self) -> PublicKey {
        match self {
            Keypair::K256(k) => PublicKey::K256(*k.verifying_key()),
            Keypair::P256(k) => PublicKey::P256(*k.verifying_key()),
        }
    }

    /// ECDSA over SHA-256(`msg`) with RFC 6979 nonces; compact `r‖s`, always low-S.
    pub fn sign(&self, msg: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        match self {
            Keypair::K256(k) => {
                // k256 already normalises; doing it again is free and keeps the invariant local.
                let sig: k256::ecdsa::Signature = k.sign(msg);
                out.copy_from_slice(&sig.normalize_s().to_bytes());
            }
            Keypair::P256(k) => {
                // p256 does not normalise (NORMALIZE_S = false); atproto requires low-S.
                let sig: p256::ecdsa::Signature = k.sign(msg);
                out.copy_from_slice(&sig.normalize_s().to_bytes());
            }
        }
        Signature(out)
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("curve", &self.curve())
            .field("public", &self.public_key().to_did_key())
            .finish_non_exhaustive()
    }
}
