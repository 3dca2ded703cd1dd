//! Filesystem operations of a build step: each turns an op into layer entries.

pub mod copy;
pub mod mkdir;
