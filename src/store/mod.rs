//! The store (being written: see the store helper).
use std::path::Path;
/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Placeholder.
    #[error("cannot open store {path}")]
    Open {
        /// Path.
        path: String,
    },
}
/// The store.
#[derive(Clone, Debug)]
pub struct Store;
impl Store {
    /// Open.
    pub async fn open(_path: &Path) -> Result<Store, Error> {
        Ok(Store)
    }
}
