//! Deduplicated, incremental repositories (format v2, FORMAT.md Part II).
//!
//! Data is cut into chunks by the core's keyed chunker and named by a keyed MAC; chunks
//! are compressed and packed many to a recipient-sealed pack whose table of contents
//! is inside the encryption and whose length is padded; indexes map chunk IDs to
//! packs; directory listings are blobs too, so an unchanged subtree costs nothing; a
//! snapshot names a root tree. A full key reads and writes; a write-only key (the
//! writer secret and the public key) adds and deduplicates but opens nothing stored.
//!
//! Layout: [`keys`] (what a key file gives), [`recipient`] (HPKE sealing of object
//! keys), [`object`] (sealed objects, whole and by range), [`pack`] (pack plaintexts),
//! [`index`] (index objects and the in-memory index), [`config`] (the configuration and
//! object names), [`keyfile`] (key files), [`snapshot`], and [`repository`] (an opened
//! repository).

pub mod backup;
pub mod browse;
pub mod cache;
pub mod check;
pub mod config;
pub mod filter;
pub mod forget;
pub mod fsmeta;
pub mod index;
pub mod keyfile;
pub mod keys;
pub mod locks;
pub mod object;
pub mod pack;
pub mod prune;
#[doc(hidden)]
pub mod random;
pub mod recipient;
pub mod repository;
pub mod restore;
pub mod snapshot;
pub mod spill;
pub mod tree;
pub mod trees;
pub mod uploader;
pub mod workers;

pub use crate::Error;
pub use repository::{InitOptions, Repository};
