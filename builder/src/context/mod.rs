//! The build context: a directory read in place, filtered by `.dockerignore`.
