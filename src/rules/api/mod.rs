//! What scripts can call: one file per area, combined here.
//!
//! - [`message`]: the `msg` object (read-only getters) and the address type;
//! - [`actions`]: `move_to`, `copy_to`, `flag`, `label`, `delete`, `stop`, ... which record
//!   decisions into the running evaluation's own plan.

pub mod actions;
pub mod message;

use rhai::Engine;

/// Registers every area of the API on the engine.
pub fn register(engine: &mut Engine) {
    message::register(engine);
    actions::register(engine);
}
