//! The rule API reference, generated from the engine itself.
//!
//! Every script function is registered through [`function`] or [`getter`] with a [`Doc`]: how it
//! is called, one line on what it does, and an example. Rhai keeps that text with the function
//! (its `metadata` feature), and [`reference`] turns the registered functions back into
//! `docs/rules.md`. A function registered without a `Doc` shows up in the reference test as
//! undocumented, and a changed `Doc` makes the committed reference stale: the tests in
//! `api/tests/reference.rs` fail on both, so the reference cannot drift from the engine.

use std::collections::BTreeMap;

use rhai::{Engine, FuncRegistration, RhaiNativeFunc};

/// A script function's entry in the reference.
#[derive(Clone, Copy, Debug)]
pub struct Doc {
    /// How a rule calls it, with what it returns: `msg.header(name) -> string`.
    pub usage: &'static str,
    /// One line on what it does.
    pub text: &'static str,
    /// A line of Rhai that uses it (it must compile: a test checks every one).
    pub example: &'static str,
}

/// A [`Doc`], shorter to write at the registration.
pub const fn doc(usage: &'static str, text: &'static str, example: &'static str) -> Doc {
    Doc { usage, text, example }
}

const EXAMPLE: &str = "/// Example: ";

impl Doc {
    /// The doc comment Rhai stores with the function: three `///` lines.
    fn comment(&self) -> String {
        format!("/// {}\n/// {}\n{EXAMPLE}{}", self.usage, self.text, self.example)
    }

    /// Reads back a comment written by [`Doc::comment`]; `None` for anything else.
    pub fn parse(comment: &str) -> Option<(String, String, String)> {
        let mut lines = comment.lines();
        let usage = lines.next()?.strip_prefix("/// ")?;
        let text = lines.next()?.strip_prefix("/// ")?;
        let example = lines.next()?.strip_prefix(EXAMPLE)?;
        let complete = lines.next().is_none() && [usage, text, example].iter().all(|s| !s.trim().is_empty());
        complete.then(|| (usage.to_owned(), text.to_owned(), example.to_owned()))
    }
}

/// A registration of `name` carrying its reference entry, for the rare function that needs
/// more than [`function`] sets (such as volatility).
pub fn named(name: &str, doc: Doc) -> FuncRegistration {
    FuncRegistration::new(name).with_comments([doc.comment()])
}

/// Registers a function (or an operator, or a method: the first parameter is the receiver)
/// with its reference entry.
pub fn function<A: 'static, const N: usize, const X: bool, R: Clone + Send + Sync + 'static, const F: bool>(
    engine: &mut Engine,
    name: &str,
    doc: Doc,
    func: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
) {
    named(name, doc).register_into_engine(engine, func);
}

/// Registers a property getter (`value.name`) with its reference entry.
pub fn getter<A: 'static, const N: usize, const X: bool, R: Clone + Send + Sync + 'static, const F: bool>(
    engine: &mut Engine,
    name: &str,
    doc: Doc,
    func: impl RhaiNativeFunc<A, N, X, R, F> + Send + Sync + 'static,
) {
    FuncRegistration::new_getter(name).with_comments([doc.comment()]).register_into_engine(engine, func);
}

/// One area of the API, as the reference presents it.
pub struct Area {
    /// The section title.
    pub title: &'static str,
    /// The paragraph under the title.
    pub intro: &'static str,
    /// Registers the area's functions.
    pub register: fn(&mut Engine),
}

/// One registered function as the metadata describes it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    /// The name, `get$x` for the getter of `x`.
    pub name: String,
    /// The number of parameters, the receiver included.
    pub num_params: usize,
    /// The doc comment blocks.
    #[serde(default)]
    pub doc_comments: Vec<String>,
}

/// Every function an area registers, as Rhai's metadata lists them.
pub fn registered(area: &Area) -> Vec<Registered> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(default)]
        functions: Vec<Registered>,
    }
    // A raw engine holds no standard library, so the metadata lists exactly this area.
    let mut engine = Engine::new_raw();
    (area.register)(&mut engine);
    // Both steps work on data Rhai itself produced from registered functions; a failure would be
    // a Rhai bug, and the reference would then be empty rather than wrong.
    let json = engine.gen_fn_metadata_to_json(false).unwrap_or_default();
    serde_json::from_str::<Metadata>(&json).map(|m| m.functions).unwrap_or_default()
}

/// The reference as Markdown: one section per area, one row per documented entry. Functions
/// sharing one `Doc` (the overloads of an operator) share one row.
pub fn reference(areas: &[Area]) -> String {
    let mut out = String::from(HEADER);
    for area in areas {
        out.push_str(&format!(
            "\n## {}\n\n{}\n\n| call | what it does | example |\n|---|---|---|\n",
            area.title, area.intro
        ));
        let rows: BTreeMap<String, (String, String)> = registered(area)
            .iter()
            .filter_map(|f| f.doc_comments.first().and_then(|c| Doc::parse(c)))
            .map(|(usage, text, example)| (usage, (text, example)))
            .collect();
        for (usage, (text, example)) in rows {
            out.push_str(&format!("| {} | {} | {} |\n", code(&usage), cell(&text), code(&example)));
        }
    }
    out
}

const HEADER: &str = "# Rule API reference

<!-- Generated from the functions registered on the rule engine (src/rules/api/); do not edit.
     Regenerate with: TIDINGS_BLESS=1 cargo test --lib the_reference_is_current -->

Everything a rule can call, by area. How rules run, their limits and the plan they build:
[rules/README.md](../rules/README.md). Types: `string`, `int`, `bool`, `array`, `map`, `()` (Rhai's
nothing), and the host types `Message`, `Address`, `Auth` and `Date` described below.
";

/// Text in a table cell: `|` would end the cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn code(text: &str) -> String {
    format!("`{}`", cell(text))
}
