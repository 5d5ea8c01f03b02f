//! The one Rhai engine every rule runs in, and the limits that keep a rule from hurting the host.
//!
//! Rules are untrusted in the sense that a typo can loop forever or build a huge string: every
//! evaluation is bounded. Imports resolve only under the plugins directory
//! ([`super::resolver`]); data files reach scripts only as copies, through `data(name)`.

use std::sync::Arc;

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};

use super::data::DataSet;
use super::resolver::PluginResolver;
use crate::config::Limits;

/// Nesting of function calls.
pub const MAX_CALL_LEVELS: usize = 32;
/// Longest string a script may build, in bytes.
pub const MAX_STRING_SIZE: usize = 1 << 20;
/// Largest array or map a script may build.
pub const MAX_COLLECTION_SIZE: usize = 10_000;

/// Builds the engine: limits, no `eval`, strict variables, imports through `resolver`, `data`
/// over `data`, and `print`/`debug` routed to tracing (inside the rule's span) instead of stdout.
pub fn build(resolver: PluginResolver, data: Arc<DataSet>, limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(limits.operations)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(64, 32)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_COLLECTION_SIZE)
        .set_max_map_size(MAX_COLLECTION_SIZE)
        .set_max_modules(64)
        // A typo'd variable should fail at compile time, not evaluate to ().
        .set_strict_variables(true)
        // Rhai interns every string a `let` stores: in a rule that is a header value, a new
        // one on every message, so the interner only hashes, locks and evicts (about 4% of an
        // evaluation in the backlog benchmark). Interning saves memory, never changes a value.
        .set_max_strings_interned(0)
        .set_module_resolver(resolver);
    // `eval` would let a rule compile code at run time, outside the start-up check.
    engine.disable_symbol("eval");
    engine.on_print(|text| {
        tracing::info!(target: "tidings::rule", "{text}");
        super::printed::record(text);
    });
    engine.on_debug(|text, source, pos| {
        tracing::debug!(target: "tidings::rule", source, %pos, "{text}");
        super::printed::record(text);
    });
    // A function rather than a variable in scope: a copy is made only when a rule asks, the
    // optimizer cannot fold it away, and there is no global for a script to change.
    engine.register_fn("data", move |ctx: NativeCallContext, name: &str| -> Result<Dynamic, Box<EvalAltResult>> {
        data.get(name).ok_or_else(|| {
            let known = data.names().iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
            let known = if known.is_empty() { "there are none".to_owned() } else { format!("there are {known}") };
            let message = format!("no data file named `{name}` in rules/{}/ ({known})", super::data::DIR);
            Box::new(EvalAltResult::ErrorRuntime(message.into(), ctx.call_position()))
        })
    });
    super::api::register(&mut engine);
    // What a rule run calls once the rule's statements ran with the run's tag (see `evaluate`).
    engine.register_fn(super::api::actions::END, || ());
    engine
}
