//! # coffer-adapters
//!
//! Everything of Coffer that touches an operating system, over `coffer-core`'s
//! allocation-free state machines.
//!
//! - [`vectors`]: applies test-vector files (Coffer's own, and Wycheproof's
//!   Cobblestone-256) to the core, for `coffer vectors verify` and the tests.

#![forbid(unsafe_code)]

mod error;
pub mod vectors;

pub use error::Error;
