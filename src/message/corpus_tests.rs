//! Corpus test: every message in the shared corpus yields a view (written next).
