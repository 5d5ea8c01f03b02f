//! The rule API through real rule files: each test writes rules into a temporary rules
//! directory, compiles them as the daemon does, and runs them over a message.
