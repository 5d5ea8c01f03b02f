//! Not written yet.
use anyhow::Result;

pub async fn run(_table: &mut crate::table::Table) -> Result<()> {
    anyhow::bail!("the backlog part is not written yet")
}
