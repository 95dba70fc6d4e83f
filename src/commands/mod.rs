//! One module per group of commands; each is a thin layer over the library crates.

pub mod build;
pub mod compile_commands;
pub mod copy;
pub mod debug;
pub mod deps;
pub mod inspect;
pub mod maintenance;
pub mod manual;
pub mod new;
pub mod realise;
pub mod repair;
pub mod share;
pub mod test;
pub mod why;
pub mod worker;
