//! Not written yet.
use anyhow::Result;

pub fn run(_table: &mut crate::table::Table) -> Result<()> {
    anyhow::bail!("the rules part is not written yet")
}
