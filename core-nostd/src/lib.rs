//! # coffer-core
//!
//! The cryptography of Coffer, the encrypted backup system: `no_std`, no `alloc`, no
//! `unsafe`, the same code on a microcontroller, an ARM NAS and a server.
//!
//! ## What it is
//! - [`chunked`]: the C2SP chunked-encryption scheme (c2sp.org/chunked-encryption;
//!   Cobblestone-256 for AES-256-GCM, and the same construction over
//!   ChaCha20-Poly1305), usable on its own with an input key and a context.
//! - [`stream`]: Coffer sealed streams, a 32-byte header (magic, version, suite, key ID)
//!   bound as the scheme's context, then the message.
//! - [`envelope`] and [`passphrase`]: a 32-byte secret wrapped under a key-encryption
//!   key, or under a passphrase through Argon2id, with its fields bound as context.
//! - [`provider`]: the chunk AEAD behind a trait, so a faster provider drives the same
//!   state machines. [`provider::RustCrypto`] is the portable one.
//!
//! Every byte of every format is specified in `FORMAT.md` at the repository root.
//!
//! ## What it protects against
//! Anyone who can read or change stored objects, but holds no key: they learn the
//! length and the key ID, nothing else. Changed, reordered, spliced, duplicated,
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
//! - their own state, with the RustCrypto provider, is at most [`MAX_STATE_LEN`] bytes:
//!   most of it is the portable AES key schedule (bit-sliced round keys); the scheme's
//!   own state is a nonce, a counter and two lengths. The `memory` test checks both;
//! - passphrase envelopes need Argon2id's memory ([`passphrase::Argon2Params::blocks`]
//!   blocks of 1 KiB), also the caller's.

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
        clippy::arithmetic_side_effects
    )
)]

#[cfg(test)]
extern crate std;

pub mod chunked;
pub mod envelope;
mod error;
mod header;
pub mod kdf;
pub mod passphrase;
pub mod provider;
pub mod secret;
pub mod stream;

pub use error::Error;
pub use header::FORMAT_VERSION;
pub use provider::{RustCrypto, Suite};
pub use secret::{KeyId, SecretKey};

/// The most bytes of state (beyond the caller's buffer) a sealer or opener with the
/// RustCrypto provider holds; checked by the `memory` test.
pub const MAX_STATE_LEN: usize = 1536;
