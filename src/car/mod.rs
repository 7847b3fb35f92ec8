//! CARv1 files: placeholder.
