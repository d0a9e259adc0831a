//! Which chain serves a hostname: [`rules`] (patterns, tried in order),
//! [`template`] (chains with `%h`, `%r`, `%p`), [`names`] (host and user
//! names that may go into a chain).

mod names;
mod rules;
mod template;

pub use rules::{MappingError, Routing, Rule};
pub use template::ExpandError;
