//! Server health: the pure rise/fall counter and the active checkers that feed it.

pub mod checker;
pub mod counter;
