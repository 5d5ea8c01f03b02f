//! Not written yet.
use anyhow::Result;

pub async fn run(_table: &mut crate::table::Table) -> Result<()> {
    anyhow::bail!("the footprint part is not written yet")
}
