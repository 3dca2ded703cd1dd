//! kiln's content-addressed storage. Knows layers, blobs and images; never Dockerfiles.
