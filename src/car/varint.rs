//! Unsigned LEB128 varints as used by CAR section lengths.

use super::CarError;
use std::io::{self, Read};

/// Appends `value` as an unsigned varint.
pub(super) fn write(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one minimally-encoded varint. `Ok(None)` means the input ended cleanly before its
/// first byte (the normal end of a CAR).
pub(super) fn read(input: &mut impl Read) -> Result<Option<u64>, CarError> {
    let mut value: u64 = 0;
    for i in 0..10 {
        let Some(b) = read_byte(input)? else {
            return if i == 0 {
                Ok(None)
            } else {
                Err(CarError::Truncated("a varint"))
            };
        };
        if i == 9 && b > 1 {
            return Err(CarError::Varint("value exceeds 64 bits"));
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if i > 0 && b == 0 {
                return Err(CarError::Varint("not minimally encoded"));
            }
            return Ok(Some(value));
        }
    }
    Err(CarError::Varint("longer than 10 bytes"))
}

fn read_byte(input: &mut impl Read) -> Result<Option<u8>, CarError> {
    let mut byte = [0u8];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(byte[0])),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
