//! # coffer-server
//!
//! The lite control server of Coffer: tenants, operators, agents, their locked
//! destinations and repositories, jobs, runs and restore points, and the dispatch of
//! work to agents by long poll. Agents never hold storage credentials: the server
//! hands them pre-signed URLs scoped to one object key under their destination, for
//! one method, for minutes. With no S3 service configured the server is its own store
//! ([`local_s3`]): a local folder behind an S3 endpoint built on the `s3s` crate, with
//! the same request shapes and signatures.
//!
//! Layout: [`routes`] (thin handlers per caller: admin, operator, agent) over [`db`]
//! (migrations and queries, on blocking threads), [`auth`] (tokens, rate limits),
//! [`keys`] (repository keys under the KEK, rotation), [`stores`] and [`local_s3`]
//! (storage and pre-signed URLs), [`scheduler`] (due jobs, lapsed leases, batched
//! heartbeats), the audit log (`db::audit`), and [`error`] (one error type mapped to
//! HTTP statuses), and [`ui`] (the web dashboard under `/ui/`, over the same handlers).
//!
//! Secrets (tokens, the KEK, repository keys, S3 secret keys) are never logged, never
//! in argv, never in `Debug` output; tokens are stored as SHA-256 hashes and compared
//! in constant time.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod extract;
pub mod kek;
pub mod keys;
pub mod local_s3;
pub mod metrics;
pub mod notify;
pub mod reconcile;
pub mod repos;
pub mod retention;
pub mod routes;
pub mod run_access;
pub mod scheduler;
pub mod selfbackup;
pub mod server;
pub mod state;
pub mod stores;
pub mod token;
pub mod ui;
pub mod usage;

pub use routes::app;
pub use server::{Server, Started};
