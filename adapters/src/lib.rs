//! # coffer-adapters
//!
//! Everything of Coffer that touches an operating system, over `coffer-core`'s
//! allocation-free state machines.
//!
//! - [`storage`]: objects in a local folder or an S3-compatible bucket.
//! - [`vectors`]: applies test-vector files (Coffer's own, and Wycheproof's
//!   Cobblestone-256) to the core, for `coffer vectors verify` and the tests.

#![forbid(unsafe_code)]

mod error;
pub mod storage;
pub mod vectors;

pub use error::Error;
