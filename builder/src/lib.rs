//! kiln's builder: runs a [`kiln_frontend::BuildGraph`] and assembles the image.

pub mod context;
