//! Signing keys, public keys and ECDSA signatures for the two atproto curves (k256, p256).
//!
//! Invariants:
//! - A signature is always over SHA-256 of the message bytes, encoded as compact 64-byte `r‖s`.
//! - Every signature this module produces is low-S (k256 normalises by itself; p256 is
//!   normalised explicitly because its `NORMALIZE_S` is false).
//! - [`PublicKey::verify`] rejects anything that is not exactly 64 bytes (so DER is rejected),
//!   rejects high-S on both curves before doing any curve arithmetic, and never panics.
//! - Public keys are exchanged as compressed 33-byte points. `did:key` / `Multikey` carry a
//!   multicodec varint naming the curve; the legacy DID-document encoding does not, so the
//!   curve has to come from the verification method `type`.
//! - Every decoder caps its input length before decoding, and returns [`CryptoError`] on bad
//!   input rather than panicking.
//! - `Debug` on [`Keypair`] never prints secret material.

mod keypair;
mod multikey;
mod public_key;

pub use keypair::Keypair;
pub use public_key::{KeyEncoding, PublicKey};

use std::fmt;

/// One of the two elliptic curves atproto supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// secp256k1 (`ES256K`).
    K256,
    /// NIST P-256 / secp256r1 (`ES256`).
    P256,
}

impl Curve {
    /// The JWS `alg` name for signatures on this curve.
    pub fn jwt_alg(self) -> &'static str {
        match self {
            Curve::K256 => "ES256K",
            Curve::P256 => "ES256",
        }
    }

    /// Inverse of [`Curve::jwt_alg`]; exact, case-sensitive match.
    pub fn from_jwt_alg(alg: &str) -> Option<Curve> {
        match alg {
            "ES256K" => Some(Curve::K256),
            "ES256" => Some(Curve::P256),
            _ => None,
        }
    }

    /// The multicodec code of this curve's compressed public key
    /// (`secp256k1-pub` 0xe7, `p256-pub` 0x1200).
    pub fn multicodec(self) -> u64 {
        match self {
            Curve::K256 => 0xe7,
            Curve::P256 => 0x1200,
        }
    }

    /// Short name used in atproto docs: `k256` / `p256`.
    pub fn name(self) -> &'static str {
        match self {
            Curve::K256 => "k256",
            Curve::P256 => "p256",
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compact ECDSA signature, `r‖s` big-endian, always low-S when produced by [`Keypair::sign`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    /// The raw 64 bytes, by value.
    pub fn to_bytes(self) -> [u8; 64] {
        self.0
    }
}

impl AsRef<[u8]> for Signature {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Signature> for [u8; 64] {
    fn from(sig: Signature) -> Self {
        sig.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

/// Everything that can go wrong parsing keys or verifying signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("private key is {0} bytes, expected 32")]
    PrivateKeyLength(usize),
    #[error("private key is not a valid {0} scalar (zero or not below the curve order)")]
    PrivateKeyOutOfRange(Curve),
    #[error("private key is not valid hex")]
    PrivateKeyHex,
    #[error("not a did:key (expected prefix \"did:key:\")")]
    NotDidKey,
    #[error("encoded key is {0} characters long, which is longer than any valid key encoding")]
    EncodedKeyTooLong(usize),
    #[error("expected multibase base58btc (prefix 'z'), found {0}")]
    MultibasePrefix(String),
    #[error("invalid base58btc encoding")]
    Base58,
    #[error("invalid multicodec varint")]
    Varint,
    #[error("unknown multicodec 0x{0:x} (expected secp256k1-pub 0xe7 or p256-pub 0x1200)")]
    UnknownMulticodec(u64),
    #[error("{curve} public key is {len} bytes, expected {expected}")]
    PublicKeyLength {
        curve: Curve,
        len: usize,
        expected: &'static str,
    },
    #[error("bytes are not a valid {0} public key point")]
    InvalidPoint(Curve),
    #[error("unknown verification method type {0:?}")]
    UnknownKeyType(String),
    #[error("signature is {0} bytes, expected 64 (DER signatures are not allowed)")]
    SignatureLength(usize),
    #[error("signature r or s is zero or not below the curve order")]
    SignatureOutOfRange,
    #[error("high-S signature rejected (atproto requires low-S)")]
    HighS,
    #[error("signature does not verify for this key and message")]
    BadSignature,
}
