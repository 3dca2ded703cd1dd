//! Filesystem operations of a build step: each turns an op into layer entries.
//!
//! `COPY` ([`copy`]) and `ADD` ([`add`]) read their sources into items ([`gather`] for the
//! context and other filesystems, [`archive`] for tar archives) and place them under the
//! destination ([`place`]); [`hash`] digests what a context source selects for cache keys.

pub mod add;
mod archive;
pub mod copy;
mod gather;
mod hash;
pub mod mkdir;
mod place;
