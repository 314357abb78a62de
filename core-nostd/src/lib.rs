//! # coffer-core
//!
//! The cryptography of Coffer, the encrypted backup system: `no_std`, no `alloc`, no
//! `unsafe`, the same code on a microcontroller, an ARM NAS and a server.
//!
//! ## What it is
//! - [`chunked`]: the C2SP chunked-encryption scheme (c2sp.org/chunked-encryption;
//!   Cobblestone-256 for AES-256-GCM, and the same construction over
//!   ChaCha20-Poly1305), usable on its own with an input key and a context: one chunk at
//!   a time ([`chunked::Sealer`], [`chunked::StreamOpener`]), or in batches of many
//!   chunks sealed or opened in place on the caller's threads ([`chunked::batch`]); the
//!   stream's rules (final chunk, truncation, indices) are the core's either way. Raw
//!   access to chunk `i` is fenced off in [`chunked::hazmat`].
//! - [`stream`]: Coffer sealed streams, a 32-byte header (magic, version, suite, key ID)
//!   bound as the scheme's context, then the message.
//! - [`envelope`] and [`passphrase`]: a 32-byte secret wrapped under a key-encryption
//!   key, or under a passphrase through Argon2id, with its fields bound as context.
//! - [`record`]: the postcard records of a backup manifest, decoded in place.
//! - [`chunker`]: format v2's keyed content-defined chunker (buzhash over a secret
//!   table, then AES-128 decides) and chunk IDs (HMAC-SHA-256), with the keys they
//!   derive from the repository's writer secret; sans-IO, fed slices of any size.
//! - [`provider`]: the chunk AEAD behind a trait, so a faster provider drives the same
//!   state machines. [`provider::RustCrypto`] is the portable one.
//!
//! Every byte of every format is specified in `FORMAT.md` at the repository root.
//!
//! ## Example
//! ```
//! use coffer_core::chunked::{OPEN_BUFFER_LEN, SEAL_BUFFER_LEN};
//! use coffer_core::{stream, Error, RustCrypto, SecretKey, Suite};
//! use embedded_io::Read;
//!
//! let key = SecretKey::from_bytes([7; 32]);
//! let plaintext = [0x42u8; 40_000];
//!
//! // Seal: the prefix (header, salt, commitment), each chunk the sealer emits, the tail.
//! let mut seal_buf = [0u8; SEAL_BUFFER_LEN];
//! let (mut sealer, prefix) = stream::seal(
//!     &RustCrypto, Suite::Aes256Gcm, &key, b"repo-1", &mut rand_core::OsRng, &mut seal_buf[..],
//! )?;
//! let mut sealed = prefix.to_vec();
//! let mut rest = &plaintext[..];
//! while !rest.is_empty() {
//!     let (taken, chunk) = sealer.push(rest)?;
//!     sealed.extend_from_slice(chunk.unwrap_or_default());
//!     rest = &rest[taken..];
//! }
//! sealed.extend_from_slice(sealer.finish()?.ciphertext());
//!
//! // Open: plaintext comes out only after each chunk's tag verified.
//! let mut open_buf = [0u8; OPEN_BUFFER_LEN];
//! let (header, mut opener) =
//!     stream::open(&RustCrypto, &key, b"repo-1", &sealed[..], &mut open_buf[..])?;
//! assert_eq!(header.key_id, key.id());
//! let mut out = [0u8; 40_000];
//! opener.read_exact(&mut out).map_err(|_| Error::Truncated)?;
//! assert_eq!(out, plaintext);
//!
//! // Another key is told which key the stream wants, before any chunk is opened.
//! let other = SecretKey::from_bytes([8; 32]);
//! let err = stream::open(&RustCrypto, &other, b"repo-1", &sealed[..], &mut open_buf[..]);
//! assert_eq!(err.err(), Some(Error::WrongKey { expected: key.id() }));
//! # Ok::<(), Error>(())
//! ```
//!
//! ## What it protects against
//! Anyone who can read or change stored objects, but holds no key. They learn what
//! the header shows (format version, suite, key ID, so which objects share a key), the
//! plaintext length to within 16 bytes, and for envelopes the purpose, key version and
//! KEK ID; nothing about the plaintext itself. Changed, reordered, spliced, duplicated,
//! truncated or extended chunks are detected; so is a wrong key (before any chunk is
//! opened, by the key commitment: one ciphertext cannot open under two keys) and a
//! wrong context (a stream cannot be passed off as another repository's).
//!
//! ## Released plaintext
//! A chunk's plaintext is *released* — copied where the caller can read it — only after
//! its tag verified. A stream can still fail after some chunks were released (it was
//! cut short, or a later chunk is corrupt): the streaming opener then returns the same
//! error on every later call and never reports a clean end, so callers must see it end
//! (`read` returning `Ok(0)`) before they trust the whole output, e.g. before renaming a
//! restored file into place.
//!
//! ## Memory
//! Nothing allocates. The caller gives the buffers:
//! - a [`chunked::Sealer`] needs [`chunked::SEAL_BUFFER_LEN`] = 16 416 bytes of buffer;
//! - a [`chunked::StreamOpener`] or [`chunked::RandomAccessOpener`] needs
//!   [`chunked::OPEN_BUFFER_LEN`] = 16 400 bytes;
//! - [`chunked::batch`] works in the caller's batch buffer of any number of chunks
//!   ([`chunked::batch::batch_len`]); its cursors hold a few counters;
//! - their own state, with the RustCrypto provider, is at most [`MAX_STATE_LEN`] bytes:
//!   most of it is the portable AES key schedule (bit-sliced round keys); the scheme's
//!   own state is a nonce, a counter and two lengths. The `memory` test checks both;
//! - passphrase envelopes need Argon2id's memory ([`passphrase::Argon2Params::blocks`]
//!   blocks of 1 KiB), also the caller's;
//! - a [`chunker::Chunker`] is at most 5 KiB (its 4 KiB secret table and the AES-128 key
//!   schedule) and serves any number of streams, each a [`chunker::ChunkStream`] of at
//!   most 128 bytes; the chunker never holds the data. The `memory` test checks both.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::std_instead_of_core,
        clippy::alloc_instead_of_core
    )
)]

#[cfg(test)]
extern crate std;

pub mod chunked;
pub mod chunker;
pub mod envelope;
mod error;
mod header;
pub mod kdf;
pub mod passphrase;
pub mod provider;
pub mod record;
pub mod secret;
pub mod stream;

pub use error::Error;
pub use header::FORMAT_VERSION;
pub use provider::{RustCrypto, Suite};
pub use secret::{KeyId, SecretKey};

/// The most bytes of state (beyond the caller's buffer) a sealer or opener with the
/// RustCrypto provider holds; checked by the `memory` test.
pub const MAX_STATE_LEN: usize = 1536;
