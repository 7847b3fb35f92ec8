//! Public keys: did:key / Multikey / legacy multibase encodings, and signature verification.

use std::fmt;

use k256::ecdsa::signature::Verifier as _;

use super::multikey::{
    decode_base58btc_multibase, encode_base58btc_multibase, read_uvarint, write_uvarint,
};
use super::{CryptoError, Curve};

const DID_KEY_PREFIX: &str = "did:key:";

/// A public verification key on one of the atproto curves.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    K256(k256::ecdsa::VerifyingKey),
    P256(p256::ecdsa::VerifyingKey),
}

/// How a DID document verification method encodes its `publicKeyMultibase`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyEncoding {
    /// `type: "Multikey"`: multicodec-prefixed compressed point (same as did:key).
    Multikey,
    /// `EcdsaSecp256k1VerificationKey2019` / `EcdsaSecp256r1VerificationKey2019`: bare point,
    /// no multicodec, so the curve comes from the type name.
    Legacy(Curve),
}

impl KeyEncoding {
    /// Map a verification method `type` to its encoding; `None` for types atproto doesn't use.
    pub fn from_did_doc_type(ty: &str) -> Option<KeyEncoding> {
        match ty {
            "Multikey" => Some(KeyEncoding::Multikey),
            "EcdsaSecp256k1VerificationKey2019" => Some(KeyEncoding::Legacy(Curve::K256)),
            "EcdsaSecp256r1VerificationKey2019" => Some(KeyEncoding::Legacy(Curve::P256)),
            _ => None,
        }
    }
}

impl PublicKey {
    /// Parse a compressed (33-byte) or uncompressed (65-byte) SEC1 point.
    pub fn from_sec1_bytes(curve: Curve, bytes: &[u8]) -> Result<PublicKey, CryptoError> {
        // Check the shape ourselves: SEC1 parsers also accept the 1-byte identity encoding
        // and hybrid (0x06/0x07) prefixes, neither of which is a usable atproto key.
        let well_formed = matches!(
            (bytes.len(), bytes.first()),
            (33, Some(0x02 | 0x03)) | (65, Some(0x04))
        );
        if !well_formed {
            return Err(if matches!(bytes.len(), 33 | 65) {
                CryptoError::InvalidPoint(curve)
            } else {
                CryptoError::PublicKeyLength {
                    curve,
                    len: bytes.len(),
                    expected: "33 (compressed) or 65 (uncompressed)",
                }
            });
        }
        let invalid = |_| CryptoError::InvalidPoint(curve);
        Ok(match curve {
            Curve::K256 => {
                PublicKey::K256(k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(invalid)?)
            }
            Curve::P256 => {
                PublicKey::P256(p256::ecdsa::VerifyingKey::from_sec1_bytes(bytes).map_err(invalid)?)
            }
        })
    }

    /// Parse `did:key:z…`.
    pub fn from_did_key(did: &str) -> Result<PublicKey, CryptoError> {
        let multikey = did
            .strip_prefix(DID_KEY_PREFIX)
            .ok_or(CryptoError::NotDidKey)?;
        PublicKey::from_multikey(multikey)
    }

    /// `did:key:` + [`PublicKey::to_multikey`].
    pub fn to_did_key(&self) -> String {
        format!("{DID_KEY_PREFIX}{}", self.to_multikey())
    }

    /// Parse a Multikey: `z` + base58btc(multicodec varint ‖ 33-byte compressed point).
    pub fn from_multikey(s: &str) -> Result<PublicKey, CryptoError> {
        let bytes = decode_base58btc_multibase(s)?;
        let (code, point) = read_uvarint(&bytes)?;
        let curve = match code {
            0xe7 => Curve::K256,
            0x1200 => Curve::P256,
            other => return Err(CryptoError::UnknownMulticodec(other)),
        };
        // The spec mandates the compressed form here; uncompressed is only for legacy docs.
        if point.len() != 33 {
            return Err(CryptoError::PublicKeyLength {
                curve,
                len: point.len(),
                expected: "33 (compressed)",
            });
        }
        PublicKey::from_sec1_bytes(curve, point)
    }

    /// Encode as Multikey (the `publicKeyMultibase` of a `Multikey` verification method).
    pub fn to_multikey(&self) -> String {
        let mut bytes = Vec::with_capacity(35);
        write_uvarint(self.curve().multicodec(), &mut bytes);
        bytes.extend_from_slice(&self.compressed_bytes());
        encode_base58btc_multibase(&bytes)
    }

    /// Parse the legacy `publicKeyMultibase` (`z` + base58btc of the bare point, no multicodec).
    /// The spec says uncompressed, but compressed keys are seen in the wild, so accept both.
    pub fn from_legacy_multibase(curve: Curve, s: &str) -> Result<PublicKey, CryptoError> {
        let bytes = decode_base58btc_multibase(s)?;
        PublicKey::from_sec1_bytes(curve, &bytes)
    }

    /// Legacy encoding as the spec describes it: `z` + base58btc of the uncompressed point.
    pub fn to_legacy_multibase(&self) -> String {
        encode_base58btc_multibase(&self.uncompressed_bytes())
    }

    /// Parse a DID document verification method from its `type` and `publicKeyMultibase`.
    pub fn from_verification_method(
        ty: &str,
        public_key_multibase: &str,
    ) -> Result<PublicKey, CryptoError> {
        match KeyEncoding::from_did_doc_type(ty) {
            Some(KeyEncoding::Multikey) => PublicKey::from_multikey(public_key_multibase),
            Some(KeyEncoding::Legacy(curve)) => {
                PublicKey::from_legacy_multibase(curve, public_key_multibase)
            }
            None => Err(CryptoError::UnknownKeyType(ty.chars().take(64).collect())),
        }
    }

    /// The 33-byte compressed SEC1 point.
    pub fn compressed_bytes(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        match self {
            PublicKey::K256(k) => out.copy_from_slice(k.to_sec1_point(true).as_bytes()),
            PublicKey::P256(k) => out.copy_from_slice(k.to_sec1_point(true).as_bytes()),
        }
        out
    }

    /// The 65-byte uncompressed SEC1 point (`0x04 ‖ x ‖ y`).
    pub fn uncompressed_bytes(&self) -> [u8; 65] {
        let mut out = [0u8; 65];
        match self {
            PublicKey::K256(k) => out.copy_from_slice(k.to_sec1_point(false).as_bytes()),
            PublicKey::P256(k) => out.copy_from_slice(k.to_sec1_point(false).as_bytes()),
        }
        out
    }

    pub fn curve(&self) -> Curve {
        match self {
            PublicKey::K256(_) => Curve::K256,
            PublicKey::P256(_) => Curve::P256,
        }
    }

    /// Verify a compact 64-byte low-S signature over SHA-256(`msg`).
    ///
    /// The high-S check is explicit for both curves: p256's verifier accepts high-S, and an
    /// explicit check gives the caller a precise error for k256 too.
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> Result<(), CryptoError> {
        if sig.len() != 64 {
            return Err(CryptoError::SignatureLength(sig.len()));
        }
        match self {
            PublicKey::K256(k) => {
                let sig = k256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| CryptoError::SignatureOutOfRange)?;
                if sig.normalize_s() != sig {
                    return Err(CryptoError::HighS);
                }
                k.verify(msg, &sig).map_err(|_| CryptoError::BadSignature)
            }
            PublicKey::P256(k) => {
                let sig = p256::ecdsa::Signature::from_slice(sig)
                    .map_err(|_| CryptoError::SignatureOutOfRange)?;
                if sig.normalize_s() != sig {
                    return Err(CryptoError::HighS);
                }
                k.verify(msg, &sig).map_err(|_| CryptoError::BadSignature)
            }
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_did_key())
    }
}

/// Displays as `did:key:z…`.
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_did_key())
    }
}
