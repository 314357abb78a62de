//! # coffer-adapters
//!
//! Everything of Coffer that touches an operating system, over `coffer-core`'s
//! allocation-free state machines.
//!
//! - [`bridge`]: std::io readers that seal and open streams.
//! - [`catalogue`]: the SQLite catalogue of repositories, key envelopes and backups,
//!   with the migration runner the server reuses for its own tables.
//! - [`pipeline`]: backup and restore: paths → tar → zstd → seal → storage.
//! - [`storage`]: objects in a local folder or an S3-compatible bucket.
//! - [`vectors`]: applies test-vector files (Coffer's own, and Wycheproof's
//!   Cobblestone-256) to the core, for `coffer vectors verify` and the tests.
//! - `ring_provider` (feature `ring`, on by default): the core's chunk AEAD on `ring`;
//!   [`default_provider`] is what the CLI and server seal and open with.

#![forbid(unsafe_code)]

pub mod bridge;
pub mod catalogue;
mod error;
pub mod kit;
pub mod pipeline;
pub mod repo;
#[cfg(feature = "ring")]
pub mod ring_provider;
pub mod storage;
pub mod vectors;

pub use error::Error;
#[cfg(feature = "ring")]
pub use ring_provider::Ring;

/// The chunk-AEAD provider the std side uses: [`Ring`] when the `ring` feature is on
/// (the default), else the core's portable [`coffer_core::RustCrypto`]. Both produce
/// identical bytes and pass every vector file, so the choice is about speed only.
#[cfg(feature = "ring")]
pub type DefaultProvider = Ring;
/// The chunk-AEAD provider the std side uses: the core's portable
/// [`coffer_core::RustCrypto`], because the `ring` feature is off. With it on (the
/// default) this is the several times faster `Ring`; both produce identical bytes and
/// pass every vector file.
#[cfg(not(feature = "ring"))]
pub type DefaultProvider = coffer_core::RustCrypto;

/// The provider the CLI and server seal and open with: see [`DefaultProvider`]. Pass it
/// by reference wherever the core takes a `&P: CryptoProvider` (`stream::seal`,
/// `stream::open`, `envelope::unwrap_key`, ...).
pub fn default_provider() -> DefaultProvider {
    DefaultProvider::default()
}
