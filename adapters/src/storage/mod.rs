//! Where sealed objects live: a local folder ([`LocalStorage`]) or an S3-compatible
//! bucket ([`S3Storage`]), behind one trait. Object keys are validated ([`ObjectKey`])
//! before any backend sees them, and every backend makes a put atomic: readers see the
//! old object or the whole new one.

mod key;
pub mod local;
pub mod s3;
pub mod throttle;

use std::io::Read;

pub use key::ObjectKey;
pub use local::LocalStorage;
pub use s3::{PresignOp, PresignedRequest, S3Config, S3Storage, Signer};
pub use throttle::Throttled;

use crate::Error;

/// Whether a put may replace an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace whatever is there.
    Overwrite,
    /// Fail with [`Error::AlreadyExists`] if the key exists (write-once objects).
    CreateOnly,
}

/// What a listing or a head reports about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: ObjectKey,
    /// Its length in bytes.
    pub size: u64,
}

/// A store of objects addressed by [`ObjectKey`].
pub trait Storage: Send + Sync {
    /// Stores everything `data` yields (its size need not be known) under `key`, and
    /// returns how many bytes that was. Atomic: a failure or crash at any point leaves
    /// the previous object (or none), never part of the new one.
    ///
    /// # Errors
    /// [`Error::AlreadyExists`] in [`PutMode::CreateOnly`]; I/O and backend errors.
    fn put(&self, key: &ObjectKey, data: &mut dyn Read, mode: PutMode) -> Result<u64, Error>;

    /// The whole object, as a stream.
    ///
    /// # Errors
    /// [`Error::NotFound`]; I/O and backend errors.
    fn get(&self, key: &ObjectKey) -> Result<Box<dyn Read + Send>, Error>;

    /// `len` bytes of the object from `start` (fewer if it ends first).
    ///
    /// # Errors
    /// As [`Storage::get`].
    fn get_range(
        &self,
        key: &ObjectKey,
        start: u64,
        len: u64,
    ) -> Result<Box<dyn Read + Send>, Error>;

    /// The object's size, or `None` if there is no such object.
    ///
    /// # Errors
    /// I/O and backend errors.
    fn head(&self, key: &ObjectKey) -> Result<Option<ObjectMeta>, Error>;

    /// Every object whose key starts with `prefix` (a whole number of segments, or
    /// empty for everything), sorted by key.
    ///
    /// # Errors
    /// I/O and backend errors.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, Error>;

    /// Removes the object; removing a missing object is not an error.
    ///
    /// # Errors
    /// I/O and backend errors.
    fn delete(&self, key: &ObjectKey) -> Result<(), Error>;
}
