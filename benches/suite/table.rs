//! The table the suite prints at the end: one row per measurement, with its target.

/// One measured result.
pub struct Row {
    /// What was measured, e.g. "backlog: tidings / imapfilter wall time".
    pub what: String,
    /// The result as a person reads it, e.g. "0.42x (0.71 s / 1.69 s, median of 5)".
    pub result: String,
    /// The issue-8 target, e.g. "<= 0.5x"; "" when there is none.
    pub target: String,
    /// Whether the target was met; None when there is no target.
    pub met: Option<bool>,
}

/// Rows in the order they were added.
#[derive(Default)]
pub struct Table {
    rows: Vec<Row>,
}

impl Table {
    /// Adds a row with a target.
    pub fn add(&mut self, what: impl Into<String>, result: impl Into<String>, target: impl Into<String>, met: bool) {
        self.rows.push(Row { what: what.into(), result: result.into(), target: target.into(), met: Some(met) });
    }

    /// Adds a row without a target.
    pub fn note(&mut self, what: impl Into<String>, result: impl Into<String>) {
        self.rows.push(Row { what: what.into(), result: result.into(), target: String::new(), met: None });
    }

    /// Prints a Markdown table (pasted as is into docs/performance.md and the issue note).
    pub fn print(&self) {
        println!("\n| benchmark | result | target | met |\n|---|---|---|---|");
        for row in &self.rows {
            let met = match row.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "",
            };
            println!("| {} | {} | {} | {} |", row.what, row.result, row.target, met);
        }
    }
}
