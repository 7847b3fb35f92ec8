//! Byte-level helpers: base58btc multibase and unsigned-varint multicodec prefixes.

use super::CryptoError;

/// Longest encoded key we bother decoding. A multikey is ~48 chars and a legacy uncompressed
/// key ~90; base58 decoding is quadratic, so refuse anything much longer up front.
const MAX_ENCODED_LEN: usize = 128;

/// Decode `z` + base58btc. Rejects other multibase prefixes: atproto only uses base58btc here.
pub(super) fn decode_base58btc_multibase(s: &str) -> Result<Vec<u8>, CryptoError> {
    if s.len() > MAX_ENCODED_LEN {
        return Err(CryptoError::EncodedKeyTooLong(s.len()));
    }
    let Some(rest) = s.strip_prefix('z') else {
        let found = match s.chars().next() {
            Some(c) => format!("{c:?}"),
            None => "an empty string".to_owned(),
        };
        return Err(CryptoError::MultibasePrefix(found));
    };
    multibase::Base::Base58Btc
        .decode(rest)
        .map_err(|_| CryptoError::Base58)
}

/// `z` + base58btc.
pub(super) fn encode_base58btc_multibase(bytes: &[u8]) -> String {
    multibase::encode(multibase::Base::Base58Btc, bytes)
}

/// Read a minimal unsigned LEB128 varint (multiformats caps these at 9 bytes).
/// Returns the value and the remaining bytes.
pub(super) fn read_uvarint(bytes: &[u8]) -> Result<(u64, &[u8]), CryptoError> {
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(9) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A trailing zero byte means the same value had a shorter encoding; multiformats
            // requires the minimal one, so two spellings of one codec can't both be accepted.
            if b == 0 && i > 0 {
                return Err(CryptoError::Varint);
            }
            return Ok((value, &bytes[i + 1..]));
        }
    }
    Err(CryptoError::Varint)
}

/// Append `value` as an unsigned LEB128 varint.
pub(super) fn write_uvarint(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_the_spec_prefixes() {
        let mut v = Vec::new();
        write_uvarint(0xe7, &mut v);
        assert_eq!(v, [0xe7, 0x01]);
        v.clear();
        write_uvarint(0x1200, &mut v);
        assert_eq!(v, [0x80, 0x24]);
        assert_eq!(read_uvarint(&[0xe7, 0x01, 9]).unwrap(), (0xe7, &[9u8][..]));
        assert_eq!(read_uvarint(&[0x80, 0x24]).unwrap(), (0x1200, &[][..]));
        assert!(read_uvarint(&[0xe7, 0x81, 0x00]).is_err()); // non-minimal
        assert!(read_uvarint(&[0x80; 12]).is_err()); // too long
        assert!(read_uvarint(&[]).is_err());
    }
}
