//! Shared support for lockstep's end-to-end tests: fresh databases on both
//! backends, plugin implementations written in Rust for lifecycle tests, and
//! helpers to run the `lockstep` binaries as real processes.

pub mod author;
pub mod cli;
pub mod db;
pub mod fixtures;
pub mod poll;
pub mod process;
pub mod serve;
pub mod workload;

pub use db::{Backend, TestDb};
pub use fixtures::TestPlugins;
