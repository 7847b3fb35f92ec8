//! CAR v1 (Content Addressable aRchive) files: the repository export and diff format.
//!
//! Layout: `varint(len) header` then, per block, `varint(len) cid-bytes block-bytes`, where the
//! header is the DAG-CBOR map `{roots: [cid, ...], version: 1}`.
//!
//! Invariants:
//! - The reader holds at most one section in memory and refuses any section longer than its
//!   limit before allocating, so a hostile length prefix costs nothing.
//! - By default the reader recomputes every block's hash and rejects a block that does not
//!   match its CID; callers never see unverified blocks unless they opt out.
//! - The writer produces exactly the bytes of the reference implementation for the same roots
//!   and block order.

mod varint;

use crate::data::{self, Cid};
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};

/// Default limit on one section (CID + block). Repo blocks are at most 2 MB (sync spec); the
/// slack covers the CID.
pub const DEFAULT_MAX_SECTION: usize = 2 * 1024 * 1024 + 1024;
/// Limit on the header; a header is a handful of CIDs.
pub const MAX_HEADER: usize = 64 * 1024;

/// Why a CAR could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CarError {
    #[error("CAR I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("CAR ends in the middle of {0}")]
    Truncated(&'static str),
    #[error("malformed CAR varint: {0}")]
    Varint(&'static str),
    #[error("CAR header is invalid: {0}")]
    Header(String),
    #[error("CAR section of {len} bytes exceeds the limit of {limit} bytes")]
    SectionTooLarge { len: u64, limit: usize },
    #[error("CAR section {index} has an invalid CID: {reason}")]
    Cid { index: u64, reason: String },
    #[error("CAR block {cid} does not match its CID: {reason}")]
    BadBlock { cid: Box<Cid>, reason: String },
}

#[derive(Serialize, Deserialize)]
struct Header {
    roots: Vec<Cid>,
    version: u64,
}

/// The encoded header section (length prefix included) for the given roots.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let header = Header {
        roots: roots.to_vec(),
        version: 1,
    };
    // A struct of CIDs and an integer always serializes.
    let body = match data::cbor::to_vec(&header) {
        Ok(b) => b,
        Err(e) => unreachable!("CAR header serializes: {e}"),
    };
    let mut out = Vec::with_capacity(body.len() + 2);
    varint::write(body.len() as u64, &mut out);
    out.extend_from_slice(&body);
    out
}

/// Appends one block section (length prefix, CID, data) to `out`.
pub fn encode_block(cid: &Cid, block: &[u8], out: &mut Vec<u8>) {
    let cid_bytes = cid.to_bytes();
    varint::write((cid_bytes.len() + block.len()) as u64, out);
    out.extend_from_slice(&cid_bytes);
    out.extend_from_slice(block);
}

/// Writes a whole CAR into memory. For large repos use [`CarWriter`] over a stream.
pub fn write_to_vec<'a>(
    roots: &[Cid],
    blocks: impl IntoIterator<Item = (&'a Cid, &'a [u8])>,
) -> Vec<u8> {
    let mut out = encode_header(roots);
    for (cid, block) in blocks {
        encode_block(cid, block, &mut out);
    }
    out
}

/// Streaming CAR writer: the header is written on creation, then one block at a time.
pub struct CarWriter<W: Write> {
    out: W,
    scratch: Vec<u8>,
    blocks: u64,
}

impl<W: Write> CarWriter<W> {
    pub fn new(mut out: W, roots: &[Cid]) -> Result<Self, CarError> {
        out.write_all(&encode_header(roots))?;
        Ok(CarWriter {
            out,
            scratch: Vec::new(),
            blocks: 0,
        })
    }

    pub fn write_block(&mut self, cid: &Cid, block: &[u8]) -> Result<(), CarError> {
        // One buffer for prefix + CID keeps small blocks to a single write call.
        self.scratch.clear();
        let cid_bytes = cid.to_bytes();
        varint::write((cid_bytes.len() + block.len()) as u64, &mut self.scratch);
        self.scratch.extend_from_slice(&cid_bytes);
        self.out.write_all(&self.scratch)?;
        self.out.write_all(block)?;
        self.blocks += 1;
        Ok(())
    }

    /// Number of blocks written so far.
    pub fn blocks_written(&self) -> u64 {
        self.blocks
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, CarError> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Options for [`CarReader`].
#[derive(Debug, Clone, Copy)]
pub struct ReadOptions {
    /// Largest section (CID + block) accepted.
    pub max_section: usize,
    /// Recompute each block's hash and compare with its CID.
    pub verify_blocks: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            max_section: DEFAULT_MAX_SECTION,
            verify_blocks: true,
        }
    }
}

/// Streaming CAR reader over any `Read`; yields `(Cid, block bytes)` in file order.
pub struct CarReader<R: Read> {
    input: R,
    roots: Vec<Cid>,
    options: ReadOptions,
    index: u64,
    done: bool,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header with default options (verifying every block).
    pub fn new(input: R) -> Result<Self, CarError> {
        Self::with_options(input, ReadOptions::default())
    }

    pub fn with_options(mut input: R, options: ReadOptions) -> Result<Self, CarError> {
        let len = varint::read(&mut input)?.ok_or(CarError::Truncated("the header length"))?;
        if len == 0 || len > MAX_HEADER as u64 {
            return Err(CarError::Header(format!(
                "header length {len} is outside 1..={MAX_HEADER}"
            )));
        }
        let mut buf = vec![0u8; len as usize];
        read_exact(&mut input, &mut buf, "the header")?;
        let header: Header =
            data::cbor::from_slice(&buf).map_err(|e| CarError::Header(e.to_string()))?;
        if header.version != 1 {
            return Err(CarError::Header(format!(
                "version {} is not 1 (only CAR v1 is supported)",
                header.version
            )));
        }
        if header.roots.is_empty() {
            return Err(CarError::Header("no roots".into()));
        }
        Ok(CarReader {
            input,
            roots: header.roots,
            options,
            index: 0,
            done: false,
        })
    }

    /// The header's roots; the first is the commit for a repo export.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// The next block, or `None` at a clean end of file.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        if self.done {
            return Ok(None);
        }
        let Some(len) = varint::read(&mut self.input)? else {
            self.done = true;
            return Ok(None);
        };
        if len > self.options.max_section as u64 {
            return Err(CarError::SectionTooLarge {
                len,
                limit: self.options.max_section,
            });
        }
        let mut section = vec![0u8; len as usize];
        read_exact(&mut self.input, &mut section, "a block")?;
        let index = self.index;
        self.index += 1;

        let mut rest = section.as_slice();
        let cid = Cid::read_bytes(&mut rest).map_err(|e| CarError::Cid {
            index,
            reason: e.to_string(),
        })?;
        let cid_len = section.len() - rest.len();
        if self.options.verify_blocks {
            data::verify_cid(&cid, rest).map_err(|e| CarError::BadBlock {
                cid: Box::new(cid),
                reason: e.to_string(),
            })?;
        }
        // Reuse the section allocation for the block instead of copying it.
        section.drain(..cid_len);
        Ok(Some((cid, section)))
    }

    /// Gives back the underlying reader.
    pub fn into_inner(self) -> R {
        self.input
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_block() {
            Ok(Some(b)) => Some(Ok(b)),
            Ok(None) => None,
            Err(e) => {
                // One error ends the stream: the position in the input is no longer known.
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn read_exact(input: &mut impl Read, buf: &mut [u8], what: &'static str) -> Result<(), CarError> {
    input.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => CarError::Truncated(what),
        _ => CarError::Io(e),
    })
}
